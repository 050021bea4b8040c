import type { RedisClient } from './redis.ts';
import type { Digest } from './domain/digest.ts';
import type { Decision } from './domain/decision.ts';
import type { Logger } from './logger.ts';
import { appendToFeed, type FeedStream } from './stream-feed.ts';

/**
 * What API replicas learn through the ledger-events stream to keep their in-memory tables fresh: a
 * decision was (re)computed, a tag moved, an identity signed in a repository for the first time, or
 * the ledger was decided in full under a policy version.
 * The stream is durable and bounded (see stream-feed.ts): a replica resumes where it stopped, and
 * reloads from Postgres only when it was away longer than the window. A decision's event must not
 * be lost: a replica holding the image's earlier answer keeps it until it hears (only a miss is
 * answered from Postgres), so the decider fails its job rather than drop one. `lsn`, when set, is
 * the primary's WAL position once the change was committed (a read replica behind it lacks it).
 */
export type LedgerEvent =
  | ({ readonly type: 'decision'; readonly registry: string; readonly repository: string; readonly digest: Digest; readonly verifiedAt: string; readonly lsn?: string } & Decision)
  | { readonly type: 'tag'; readonly registry: string; readonly repository: string; readonly tag: string; readonly digest: Digest; readonly at: string; readonly lsn?: string }
  | { readonly type: 'ownership'; readonly id: string }
  /** Every image has a decision under policy `version`: replicas waiting for it switch to it. */
  | { readonly type: 'policy'; readonly version: string };

/** The ledger-events stream under a queue prefix, keeping about `maxLen` events. */
export function ledgerStream(redis: { readonly queuePrefix: string; readonly feedMaxLen: number }): FeedStream {
  return { key: `${redis.queuePrefix}:ledger-events`, maxLen: redis.feedMaxLen };
}

export async function publishEvents(redis: RedisClient, stream: FeedStream, events: readonly LedgerEvent[]): Promise<void> {
  await appendToFeed(redis, stream, events);
}

/** Tells API replicas about ledger events (see {@link announcer}). */
export type Announce = (events: readonly LedgerEvent[]) => Promise<void>;

/**
 * {@link publishEvents} that never throws: what is stored counts. A replica that misses the
 * message reads Postgres for what it does not hold.
 */
export function announcer(redis: RedisClient, stream: FeedStream, log: Pick<Logger, 'warn'>): Announce {
  return (events) =>
    publishEvents(redis, stream, events).catch((err: unknown) => {
      log.warn({ err }, 'could not announce ledger events to API replicas');
    });
}
