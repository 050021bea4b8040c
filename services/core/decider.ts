import type { RedisClient } from '../common/redis.ts';
import type { Kysely } from 'kysely';
import * as decisions from '../common/db/queries/decisions.ts';
import * as images from '../common/db/queries/images.ts';
import * as wal from '../common/db/queries/wal.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import type { FeedStream } from '../common/stream-feed.ts';
import type { Logger } from '../common/logger.ts';
import { decide } from '../common/policy/evaluate.ts';
import { requiredPredicateTypes } from '../common/policy/attestations.ts';
import type { Policy } from '../common/policy/policy.ts';

export interface Decider {
  readonly policy: Policy;
  /** Switches policy; the caller then runs {@link Decider.redecideAll}. */
  setPolicy(policy: Policy, source: string): void;
  /** Decides the given manifests under the current policy, stores and publishes the decisions. */
  decideManifests(manifestIds: readonly string[]): Promise<number>;
  /** Re-decides the whole ledger from stored material (no registry calls), in pages. */
  redecideAll(): Promise<number>;
  /**
   * Decides again every image whose decision under the policy in force expired by now (an
   * attestation condition read the time), then has the next expiry scheduled. Returns how many.
   */
  decideExpired(): Promise<number>;
}

const PAGE = 500;

export interface DeciderOptions {
  readonly db: Kysely<DB>;
  readonly redis: RedisClient;
  readonly stream: FeedStream;
  readonly policy: Policy;
  readonly policySource: string;
  readonly log: Logger;
  /** Has `decideExpired` run at `at` (the worker queues a delayed job); decisions with an expiry call it. */
  readonly scheduleExpiry?: (at: Date) => Promise<void>;
}

export function createDecider(opts: DeciderOptions): Decider {
  const { db } = opts;
  let policy = opts.policy;
  let source = opts.policySource;
  let recorded = false;
  async function decideManifests(manifestIds: readonly string[]): Promise<number> {
    if (!recorded) {
      await decisions.recordPolicy(db, policy.version, source);
      recorded = true;
    }
    const current = policy;
    const now = new Date();
    const inputs = await decisions.loadInputs(db, manifestIds, requiredPredicateTypes(current));
    const rows = inputs.map((input) => ({ input, decision: decide(current, input.registry, input.repository, input.facts, now) }));
    await decisions.upsert(db, rows);
    const expiries = rows.map((r) => r.decision.expiresAt).filter((e): e is string => typeof e === 'string');
    if (expiries.length > 0) {
      await schedule(new Date(expiries.sort()[0]!));
    }
    const lsn = await wal.currentLsn(db);
    const events: LedgerEvent[] = rows.map(({ input, decision }) => ({
      type: 'decision',
      registry: input.registry,
      repository: input.repository,
      digest: input.digest,
      verifiedAt: input.verifiedAt.toISOString(),
      lsn,
      ...decision,
    }));
    try {
      await publishEvents(opts.redis, opts.stream, events);
    } catch (err) {
      // Stored is what counts: API replicas fall back to Postgres for what they did not hear.
      opts.log.warn({ err }, 'could not publish decisions');
    }
    return rows.length;
  }
  async function schedule(at: Date): Promise<void> {
    try {
      await opts.scheduleExpiry?.(at);
    } catch (err) {
      // The decision is stored with its expiry: the next expiry job, or a restart, finds it due.
      opts.log.warn({ err, expiresAt: at.toISOString() }, 'could not schedule the re-decision of expiring decisions');
    }
  }
  async function decideExpired(): Promise<number> {
    let total = 0;
    // Bounded: a condition that flips every second (`now.getSeconds() % 2 == 0`) must not hold the job forever.
    for (let round = 0; ; round++) {
      const due = await decisions.expiringBy(db, policy.version, new Date(), PAGE);
      if (due.length > 0) {
        total += await decideManifests(due);
      }
      const next = await decisions.nextExpiry(db, policy.version);
      if (next === null) {
        return total;
      }
      const wait = next.getTime() - Date.now();
      if (wait > 2000 || round >= 10) {
        // Never at this job's own time: the same id would collapse onto it.
        await schedule(new Date(Math.max(next.getTime(), Date.now() + 2500)));
        return total;
      }
      // Due within moments (or this job ran early): decide it here rather than schedule a job at
      // the very time this one carries.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait) + 5));
    }
  }
  return {
    decideExpired,
    get policy() {
      return policy;
    },
    setPolicy(next, nextSource) {
      policy = next;
      source = nextSource;
      recorded = false;
    },
    decideManifests,
    async redecideAll() {
      const started = performance.now();
      let after = '0';
      let total = 0;
      for (;;) {
        const ids = await images.idsAfter(db, after, PAGE);
        if (ids.length === 0) {
          break;
        }
        total += await decideManifests(ids);
        after = ids.at(-1)!;
      }
      opts.log.info({ policyVersion: policy.version, decisions: total, ms: Math.round(performance.now() - started) }, 'ledger re-decided');
      return total;
    },
  };
}
