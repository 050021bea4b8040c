import { z } from 'zod';
import { definePassJob } from './define-job.ts';

export const RECONCILE_QUEUE = 'reconcile';

export const ReconcileData = z.object({
  /** Registry hosts to crawl; the registries file's reconciled registries when empty. */
  registries: z.array(z.string().min(1).max(255)).max(1_000).default([]),
});
export type ReconcileData = z.infer<typeof ReconcileData>;

/**
 * One reconciliation pass: crawl each configured registry and queue what the ledger lacks, healing
 * notifications that were lost (distribution keeps them in memory; Harbor's are per project).
 * Scheduled by a BullMQ job scheduler, so one pass runs per interval across all worker replicas.
 */
export const ReconcileJob = definePassJob('reconcile', RECONCILE_QUEUE, ReconcileData);

/** The job scheduler's id: upserted at worker start, removed when reconciliation is off. */
export const RECONCILE_SCHEDULER_ID = 'reconcile-registries';
