import { z } from 'zod';
import { defineJob } from './define-job.ts';

/** Decisions that expire by time alone (an attestation condition read `now`) are decided again here. */
export const EXPIRY_QUEUE = 'expiry';

export const RedecideExpiredData = z.object({ at: z.number().int().nonnegative() });
export type RedecideExpiredData = z.infer<typeof RedecideExpiredData>;

/**
 * Decides again, from the ledger, every image whose decision expired by `at` (milliseconds since
 * the epoch), then schedules itself for the next expiry. Queued delayed until `at` whenever a
 * decision with an expiry is stored; the id is the time, so many decisions expiring together are
 * one job. Completed jobs are dropped at once so that the same time can be scheduled again.
 */
export const RedecideExpiredJob = defineJob({
  name: 'redecide-expired',
  queue: EXPIRY_QUEUE,
  schema: RedecideExpiredData,
  jobId: (d) => `expire-${d.at}`,
  options: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: { count: 100 } },
});
