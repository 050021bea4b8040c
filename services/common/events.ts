import type { Redis } from 'ioredis';
import type { Digest } from './domain/digest.ts';
import type { Decision } from './domain/decision.ts';
import type { Logger } from './logger.ts';

/**
 * What API replicas learn through Redis pub/sub to keep their in-memory tables fresh: a decision
 * was (re)computed, a tag moved, or an identity signed in a repository for the first time. Lost messages are repaired by the Postgres fallback on a miss
 * and the warm load at start; they never make an answer more permissive than the ledger.
 */
export type LedgerEvent =
  | ({ readonly type: 'decision'; readonly registry: string; readonly repository: string; readonly digest: Digest; readonly verifiedAt: string } & Decision)
  | { readonly type: 'tag'; readonly registry: string; readonly repository: string; readonly tag: string; readonly digest: Digest; readonly at: string }
  | { readonly type: 'ownership'; readonly id: string };

export function eventsChannel(prefix: string): string {
  return `${prefix}:ledger-events`;
}

export async function publishEvents(redis: Redis, prefix: string, events: readonly LedgerEvent[]): Promise<void> {
  if (events.length === 0) {
    return;
  }
  const pipeline = redis.pipeline();
  for (const e of events) {
    pipeline.publish(eventsChannel(prefix), JSON.stringify(e));
  }
  await pipeline.exec();
}

/** Tells API replicas about ledger events (see {@link announcer}). */
export type Announce = (events: readonly LedgerEvent[]) => Promise<void>;

/**
 * {@link publishEvents} that never throws: what is stored counts. A replica that misses the
 * message reads Postgres for what it does not hold, and reloads everything when its subscription
 * comes back after a drop.
 */
export function announcer(redis: Redis, prefix: string, log: Pick<Logger, 'warn'>): Announce {
  return (events) =>
    publishEvents(redis, prefix, events).catch((err: unknown) => {
      log.warn({ err }, 'could not announce ledger events to API replicas');
    });
}
