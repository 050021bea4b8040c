import type { Redis } from 'ioredis';
import type { Digest } from './domain/digest.ts';
import type { Decision } from './domain/decision.ts';

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
