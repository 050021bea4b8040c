import type { Queue } from 'bullmq';
import type { RedisClient } from '../common/redis.ts';
import type { Kysely } from 'kysely';
import * as ownership from '../common/db/queries/ownership.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { publishEvents } from '../common/events.ts';
import { NotifyOwnershipChangeJob } from '../common/jobs/notify-ownership-change.ts';
import type { Logger } from '../common/logger.ts';
import type { FeedStream } from '../common/stream-feed.ts';

export interface OwnershipAnnouncer {
  /** Tells API replicas (subscriptions) and queues the drift alerts. Never throws. */
  announce(changes: readonly ownership.OwnershipChange[]): Promise<void>;
  /** Queues alerts recorded but never queued (the process died between commit and announce). */
  sweep(): Promise<number>;
}

/** Alerts older than this are not sent by the sweep: a late flood of stale alerts helps nobody. */
const SWEEP_WINDOW_MS = 24 * 3600 * 1000;

export function createOwnershipAnnouncer(opts: {
  db: Kysely<DB>;
  redis: RedisClient;
  stream: FeedStream;
  /** The alerts queue; null when SIGNET_ALERT_WEBHOOK_URL is not set. */
  alerts: Queue | null;
  log: Logger;
}): OwnershipAnnouncer {
  const enqueue = async (ids: readonly string[]) => {
    if (opts.alerts === null || ids.length === 0) {
      return;
    }
    await opts.alerts.addBulk(
      ids.map((changeId) => ({
        name: NotifyOwnershipChangeJob.name,
        data: { changeId },
        opts: { ...NotifyOwnershipChangeJob.options, jobId: NotifyOwnershipChangeJob.jobId({ changeId }) },
      })),
    );
  };
  return {
    async announce(changes) {
      if (changes.length === 0) {
        return;
      }
      for (const c of changes) {
        opts.log[c.kind === 'added' ? 'warn' : 'info'](
          { registry: c.registry, repository: c.repository, 'image.digest': c.digest, subject: c.subject, issuer: c.issuer, kind: c.kind },
          c.kind === 'added' ? 'ownership drift: a new identity signed in this repository' : 'first signer of a repository',
        );
      }
      try {
        await publishEvents(
          opts.redis,
          opts.stream,
          changes.map((c) => ({ type: 'ownership', id: c.id })),
        );
        await enqueue(changes.filter((c) => c.kind === 'added').map((c) => c.id));
      } catch (err) {
        // Recorded is what counts; the start-up sweep queues what could not be queued now.
        opts.log.warn({ err }, 'could not announce ownership changes');
      }
    },
    async sweep() {
      if (opts.alerts === null) {
        return 0;
      }
      const ids = await ownership.listPendingAlerts(opts.db, new Date(Date.now() - SWEEP_WINDOW_MS));
      await enqueue(ids);
      return ids.length;
    },
  };
}
