import type { Queue } from 'bullmq';
import { PRUNE_ADMISSIONS_SCHEDULER_ID, PruneAdmissionsJob } from '../common/jobs/prune-admissions.ts';
import { PRUNE_POLICY_VERSIONS_SCHEDULER_ID, PrunePolicyVersionsJob } from '../common/jobs/prune-policy-versions.ts';
import { PRUNE_DELIVERIES_SCHEDULER_ID, PruneDeliveriesJob } from '../common/jobs/prune-deliveries.ts';
import { RECONCILE_SCHEDULER_ID, ReconcileJob } from '../common/jobs/reconcile.ts';
import type { Logger } from '../common/logger.ts';
import type { JobDefinition } from '../common/jobs/define-job.ts';
import type { z } from 'zod';

/**
 * Settles one BullMQ job scheduler in the background (upserting it from every replica keeps one
 * schedule): `every` milliseconds a `job`, or no schedule at all when `every` is null, so turning a
 * pass off takes effect on the next start. The outcome is logged once Redis answers.
 */
function settleSchedule<S extends z.ZodType>(
  queue: Queue,
  schedule: { id: string; every: number | null; job: JobDefinition<S>; log: Logger; fields: Record<string, unknown>; on: string; off: string },
): boolean {
  const { id, every, job, log } = schedule;
  void (
    every === null
      ? queue.removeJobScheduler(id)
      : queue.upsertJobScheduler(id, { every }, { name: job.name, data: job.schema.parse({}), opts: job.options })
  ).then(
    () => log.info(schedule.fields, every === null ? schedule.off : schedule.on),
    (err: unknown) => log.error({ err, scheduler: id }, `cannot set the ${id} schedule`),
  );
  return every !== null;
}

/**
 * The reconciliation crawl: every `intervalMs` a pass over `registries`, or none when the interval
 * is 0 or no registry is reconciled. Resolves to whether passes run.
 */
export function scheduleReconciliation(queue: Queue, opts: { intervalMs: number; registries: readonly string[]; log: Logger }): boolean {
  const off = opts.intervalMs === 0 || opts.registries.length === 0;
  return settleSchedule(queue, {
    id: RECONCILE_SCHEDULER_ID,
    every: off ? null : opts.intervalMs,
    job: ReconcileJob,
    log: opts.log,
    fields: { intervalMs: opts.intervalMs, registries: opts.registries },
    on: 'scheduled reconciliation',
    off: 'scheduled reconciliation is off',
  });
}

/** How often the delivery prune runs: a delivery is gone within this long of passing the retention. */
export const PRUNE_DELIVERIES_EVERY_MS = 3_600_000;

/**
 * A retention prune: a pass every {@link PRUNE_DELIVERIES_EVERY_MS} (the first at once), or none
 * when the retention is 0 (rows kept forever). Resolves to whether passes run.
 */
function scheduleRetention<S extends z.ZodType>(queue: Queue, opts: { id: string; job: JobDefinition<S>; retentionMs: number; log: Logger; what: string; plural: string; setting: string }): boolean {
  return settleSchedule(queue, {
    id: opts.id,
    every: opts.retentionMs === 0 ? null : PRUNE_DELIVERIES_EVERY_MS,
    job: opts.job,
    log: opts.log,
    fields: { retentionMs: opts.retentionMs, everyMs: PRUNE_DELIVERIES_EVERY_MS },
    on: `scheduled the ${opts.what} prune`,
    off: `${opts.plural} are kept forever (${opts.setting}=0)`,
  });
}

/** The webhook delivery prune (SIGNET_DELIVERY_RETENTION). */
export function scheduleDeliveryPrune(queue: Queue, opts: { retentionMs: number; log: Logger }): boolean {
  return scheduleRetention(queue, { ...opts, id: PRUNE_DELIVERIES_SCHEDULER_ID, job: PruneDeliveriesJob, what: 'webhook delivery', plural: 'webhook deliveries', setting: 'SIGNET_DELIVERY_RETENTION' });
}

/** The admission record's prune (SIGNET_ADMISSION_RETENTION). */
export function scheduleAdmissionPrune(queue: Queue, opts: { retentionMs: number; log: Logger }): boolean {
  return scheduleRetention(queue, { ...opts, id: PRUNE_ADMISSIONS_SCHEDULER_ID, job: PruneAdmissionsJob, what: 'admission record', plural: 'admission records', setting: 'SIGNET_ADMISSION_RETENTION' });
}

/** The policy versions' prune (SIGNET_POLICY_VERSION_RETENTION). */
export function schedulePolicyVersionPrune(queue: Queue, opts: { retentionMs: number; log: Logger }): boolean {
  return scheduleRetention(queue, {
    ...opts,
    id: PRUNE_POLICY_VERSIONS_SCHEDULER_ID,
    job: PrunePolicyVersionsJob,
    what: 'retired policy versions\' decision',
    plural: 'retired policy versions\' decisions',
    setting: 'SIGNET_POLICY_VERSION_RETENTION',
  });
}
