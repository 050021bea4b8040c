import type { Queue } from 'bullmq';
import { PRUNE_DELIVERIES_SCHEDULER_ID, PruneDeliveriesJob } from '../common/jobs/prune-deliveries.ts';
import { RECONCILE_SCHEDULER_ID, ReconcileJob } from '../common/jobs/reconcile.ts';
import type { Logger } from '../common/logger.ts';

/**
 * Settles the reconciliation schedule: every `intervalMs` a pass over `registries` (a BullMQ job
 * scheduler: upserting it from every replica keeps one schedule), or none when the interval is 0 or
 * no registry is reconciled, so turning reconciliation off takes effect on the next start. Runs in
 * the background: the schedule is settled once Redis answers. Resolves to whether passes run.
 */
export function scheduleReconciliation(queue: Queue, opts: { intervalMs: number; registries: readonly string[]; log: Logger }): boolean {
  const off = opts.intervalMs === 0 || opts.registries.length === 0;
  void (
    off
      ? queue.removeJobScheduler(RECONCILE_SCHEDULER_ID)
      : queue.upsertJobScheduler(
          RECONCILE_SCHEDULER_ID,
          { every: opts.intervalMs },
          { name: ReconcileJob.name, data: ReconcileJob.schema.parse({}), opts: ReconcileJob.options },
        )
  ).then(
    () => opts.log.info({ intervalMs: opts.intervalMs, registries: opts.registries }, off ? 'scheduled reconciliation is off' : 'scheduled reconciliation'),
    (err: unknown) => opts.log.error({ err }, 'cannot set the reconciliation schedule'),
  );
  return !off;
}

/** How often the delivery prune runs: a delivery is gone within this long of passing the retention. */
export const PRUNE_DELIVERIES_EVERY_MS = 3_600_000;

/**
 * Settles the webhook delivery prune the same way: a pass every {@link PRUNE_DELIVERIES_EVERY_MS}
 * (the first at once), or none when the retention is 0 (deliveries are kept forever). Resolves to
 * whether passes run.
 */
export function scheduleDeliveryPrune(queue: Queue, opts: { retentionMs: number; log: Logger }): boolean {
  const off = opts.retentionMs === 0;
  void (
    off
      ? queue.removeJobScheduler(PRUNE_DELIVERIES_SCHEDULER_ID)
      : queue.upsertJobScheduler(
          PRUNE_DELIVERIES_SCHEDULER_ID,
          { every: PRUNE_DELIVERIES_EVERY_MS },
          { name: PruneDeliveriesJob.name, data: PruneDeliveriesJob.schema.parse({}), opts: PruneDeliveriesJob.options },
        )
  ).then(
    () =>
      opts.log.info(
        { retentionMs: opts.retentionMs, everyMs: PRUNE_DELIVERIES_EVERY_MS },
        off ? 'webhook deliveries are kept forever (SIGNET_DELIVERY_RETENTION=0)' : 'scheduled the webhook delivery prune',
      ),
    (err: unknown) => opts.log.error({ err }, 'cannot set the webhook delivery prune schedule'),
  );
  return !off;
}
