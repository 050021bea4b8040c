import type { Kysely } from 'kysely';
import * as deliveries from '../../common/db/queries/deliveries.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { PruneDeliveriesJob } from '../../common/jobs/prune-deliveries.ts';
import { implementJob } from '../kit.ts';

/** Rows per delete: each batch is one short transaction, so ingest never waits long on a prune. */
export const PRUNE_BATCH = 500;

export interface PruneDeliveriesDeps {
  readonly db: Kysely<DB>;
  /** SIGNET_DELIVERY_RETENTION; never 0 here (0 schedules no prune). */
  readonly retentionMs: number;
  readonly batch?: number;
}

/**
 * Deletes the deliveries past the retention, batch after batch until one comes back short. Closing
 * the worker stops it between batches; the next pass finishes the work.
 */
export function pruneDeliveriesJob(deps: PruneDeliveriesDeps) {
  const batch = deps.batch ?? PRUNE_BATCH;
  return implementJob(PruneDeliveriesJob, {
    async handle({ signal }) {
      let deleted = 0;
      let batches = 0;
      for (;;) {
        const n = await deliveries.pruneBatch(deps.db, deps.retentionMs, batch);
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
