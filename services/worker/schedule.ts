import type { Queue } from 'bullmq';
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
