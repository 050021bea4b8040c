import { UnrecoverableError, Worker, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { listPendingOwnershipAlerts, loadOwnershipChange, markOwnershipChangeNotified, type OwnershipChangeDetail } from '../common/db/queries/ownership.ts';
import type { OwnershipChange } from '../common/db/queries/manifests.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { publishEvents } from '../common/events.ts';
import { NotifyOwnershipChangeData, NotifyOwnershipChangeJob } from '../common/jobs/notify-ownership-change.ts';
import type { Logger } from '../common/logger.ts';

export interface OwnershipAnnouncer {
  /** Tells API replicas (subscriptions) and queues the drift alerts. Never throws. */
  announce(changes: readonly OwnershipChange[]): Promise<void>;
  /** Queues alerts recorded but never queued (the process died between commit and announce). */
  sweep(): Promise<number>;
}

/** Alerts older than this are not sent by the sweep: a late flood of stale alerts helps nobody. */
const SWEEP_WINDOW_MS = 24 * 3600 * 1000;

export function createOwnershipAnnouncer(opts: {
  db: Kysely<DB>;
  redis: Redis;
  prefix: string;
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
          opts.prefix,
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
      const ids = await listPendingOwnershipAlerts(opts.db, new Date(Date.now() - SWEEP_WINDOW_MS));
      await enqueue(ids);
      return ids.length;
    },
  };
}

/** A Slack-compatible incoming-webhook message (also accepted by Mattermost, Rocket.Chat, Teams workflows). */
export function ownershipAlertMessage(c: OwnershipChangeDetail): Record<string, unknown> {
  const who = c.issuer === null ? c.subject : `${c.subject} (${c.issuer})`;
  const image = `${c.registry}/${c.repository}@${c.digest}`;
  const before = c.previousOwners.map((o) => (o.issuer === null ? o.subject : `${o.subject} (${o.issuer})`));
  const text = `:warning: Ownership drift in ${c.registry}/${c.repository}: ${who} signed ${image}, and had never signed in this repository before. Previous signers: ${before.join(', ') || 'none'}.`;
  return {
    text,
    attachments: [
      {
        color: 'warning',
        fallback: text,
        fields: [
          { title: 'Repository', value: `${c.registry}/${c.repository}`, short: true },
          { title: 'New signer', value: who, short: true },
          { title: 'Image', value: image, short: false },
          { title: 'Previous signers', value: before.join('\n') || 'none', short: false },
          { title: 'Detected at', value: c.detectedAt.toISOString(), short: true },
        ],
      },
    ],
  };
}

/**
 * Delivers drift alerts. A 4xx (other than 408/429) means the webhook URL or message is wrong and
 * will stay wrong: the job fails for good and stays visible. Anything else retries with backoff.
 */
export function startAlertWorker(opts: {
  db: Kysely<DB>;
  url: string;
  timeoutMs: number;
  connection: Redis;
  prefix: string;
  log: Logger;
}): Worker {
  const worker = new Worker(
    NotifyOwnershipChangeJob.queue,
    async (job) => {
      const parsed = NotifyOwnershipChangeData.safeParse(job.data);
      if (!parsed.success) {
        throw new UnrecoverableError(`invalid job payload: ${parsed.error.message}`);
      }
      const change = await loadOwnershipChange(opts.db, parsed.data.changeId);
      if (change === null) {
        throw new UnrecoverableError(`ownership change ${parsed.data.changeId} does not exist`);
      }
      if (change.notifiedAt !== null) {
        return 'already notified';
      }
      const res = await fetch(opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ownershipAlertMessage(change)),
        signal: AbortSignal.timeout(opts.timeoutMs),
        redirect: 'error',
      });
      await res.body?.cancel();
      if (!res.ok) {
        const message = `alert webhook answered ${res.status}`;
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          throw new UnrecoverableError(message);
        }
        throw new Error(message);
      }
      await markOwnershipChangeNotified(opts.db, change.id);
      opts.log.info({ changeId: change.id, registry: change.registry, repository: change.repository }, 'ownership alert sent');
      return 'sent';
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: 2 },
  );
  worker.on('failed', (job, err) => opts.log.warn({ err, 'job.id': job?.id, 'job.attemptsMade': job?.attemptsMade }, 'ownership alert failed'));
  worker.on('error', (err) => opts.log.error({ err }, 'alert worker error'));
  return worker;
}
