import type { Kysely } from 'kysely';
import type { z } from 'zod';
import * as deliveries from '../../common/db/queries/deliveries.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import type { JobDefinition } from '../../common/jobs/define-job.ts';
import { PruneDeliveriesJob } from '../../common/jobs/prune-deliveries.ts';
import { implementJob, type JobImplementation } from '../kit.ts';

/** Rows per delete: each batch is one short transaction, so ingest never waits long on a prune. */
export const PRUNE_BATCH = 500;

export interface PruneDeliveriesDeps {
  readonly db: Kysely<DB>;
  /** SIGNET_DELIVERY_RETENTION; never 0 here (0 schedules no prune). */
  readonly retentionMs: number;
  readonly batch?: number;
}

/**
 * A retention pass: `pruneBatch` deletes up to `batch` rows past `retentionMs` and says how many,
 * called batch after batch until one comes back short. Closing the worker stops it between
 * batches; the next pass finishes the work.
 */
export function retentionPass<S extends z.ZodType>(
  definition: JobDefinition<S>,
  pruneBatch: (db: Kysely<DB>, retentionMs: number, batch: number) => Promise<number>,
  deps: PruneDeliveriesDeps,
): JobImplementation {
  const batch = deps.batch ?? PRUNE_BATCH;
  return implementJob(definition, {
    async handle({ signal }) {
      let deleted = 0;
      let batches = 0;
      for (;;) {
        const n = await pruneBatch(deps.db, deps.retentionMs, batch);
        deleted += n;
        batches += 1;
        if (n < batch || signal.aborted) {
          return { deleted, batches, complete: n < batch };
        }
      }
    },
    result: (r) => (r.complete ? 'pruned' : 'interrupted'),
    summary: (r) => ({ deleted: r.deleted, batches: r.batches, retentionMs: deps.retentionMs }),
  });
}

/** Deletes the webhook deliveries past SIGNET_DELIVERY_RETENTION. */
export function pruneDeliveriesJob(deps: PruneDeliveriesDeps): JobImplementation {
  return retentionPass(PruneDeliveriesJob, deliveries.pruneBatch, deps);
}
