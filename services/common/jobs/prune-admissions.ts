import { z } from 'zod';
import { definePassJob } from './define-job.ts';
import { MAINTENANCE_QUEUE } from './prune-deliveries.ts';

export const PruneAdmissionsData = z.object({});
export type PruneAdmissionsData = z.infer<typeof PruneAdmissionsData>;

/**
 * One pass of the admission record's retention: deletes, in bounded batches, the records of
 * admissions older than SIGNET_ADMISSION_RETENTION. Scheduled like the delivery prune (one pass per
 * interval across all worker replicas), on the same maintenance queue.
 */
export const PruneAdmissionsJob = definePassJob('prune-admissions', MAINTENANCE_QUEUE, PruneAdmissionsData);

/** The job scheduler's id: upserted at worker start, removed when the retention is 0 (keep forever). */
export const PRUNE_ADMISSIONS_SCHEDULER_ID = 'prune-admission-records';
