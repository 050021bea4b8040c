import { z } from 'zod';
import { defineJob } from './define-job.ts';
import { MAINTENANCE_QUEUE } from './prune-deliveries.ts';

export const PruneAdmissionsData = z.object({});
export type PruneAdmissionsData = z.infer<typeof PruneAdmissionsData>;

/**
 * One pass of the admission record's retention: deletes, in bounded batches, the records of
 * admissions older than SIGNET_ADMISSION_RETENTION. Scheduled like the delivery prune (one pass per
 * interval across all worker replicas), on the same maintenance queue.
 */
export const PruneAdmissionsJob = defineJob({
  name: 'prune-admissions',
  queue: MAINTENANCE_QUEUE,
  schema: PruneAdmissionsData,
  jobId: () => 'prune-admissions',
  options: { attempts: 1, removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } },
});

/** The job scheduler's id: upserted at worker start, removed when the retention is 0 (keep forever). */
export const PRUNE_ADMISSIONS_SCHEDULER_ID = 'prune-admission-records';
