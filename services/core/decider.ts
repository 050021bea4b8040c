import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import * as decisions from '../common/db/queries/decisions.ts';
import * as images from '../common/db/queries/images.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import type { Logger } from '../common/logger.ts';
import { decide } from '../common/policy/evaluate.ts';
import type { Policy } from '../common/policy/policy.ts';

export interface Decider {
  readonly policy: Policy;
  /** Switches policy; the caller then runs {@link Decider.redecideAll}. */
  setPolicy(policy: Policy, source: string): void;
  /** Decides the given manifests under the current policy, stores and publishes the decisions. */
  decideManifests(manifestIds: readonly string[]): Promise<number>;
  /** Re-decides the whole ledger from stored material (no registry calls), in pages. */
  redecideAll(): Promise<number>;
}

const PAGE = 500;

export function createDecider(opts: { db: Kysely<DB>; redis: Redis; prefix: string; policy: Policy; policySource: string; log: Logger }): Decider {
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
    const inputs = await decisions.loadInputs(db, manifestIds);
    const rows = inputs.map((input) => ({ input, decision: decide(current, input.registry, input.repository, input.facts) }));
    await decisions.upsert(db, rows);
    const events: LedgerEvent[] = rows.map(({ input, decision }) => ({
      type: 'decision',
      registry: input.registry,
      repository: input.repository,
      digest: input.digest,
      verifiedAt: input.verifiedAt.toISOString(),
      ...decision,
    }));
    try {
      await publishEvents(opts.redis, opts.prefix, events);
    } catch (err) {
      // Stored is what counts: API replicas fall back to Postgres for what they did not hear.
      opts.log.warn({ err }, 'could not publish decisions');
    }
    return rows.length;
  }
  return {
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
