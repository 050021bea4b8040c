import { z } from 'zod';
import { definePassJob } from './define-job.ts';

/** Housekeeping jobs of the worker role, each run on a schedule. */
export const MAINTENANCE_QUEUE = 'maintenance';

export const PruneDeliveriesData = z.object({});
export type PruneDeliveriesData = z.infer<typeof PruneDeliveriesData>;

/**
 * One pass of the webhook delivery retention: deletes, in bounded batches, the deliveries last
 * received longer ago than SIGNET_DELIVERY_RETENTION. Scheduled by a BullMQ job scheduler, so one
 * pass runs per interval across all worker replicas; a failed pass is simply the next one's work.
 */
export const PruneDeliveriesJob = definePassJob('prune-deliveries', MAINTENANCE_QUEUE, PruneDeliveriesData);

/** The job scheduler's id: upserted at worker start, removed when the retention is 0 (keep forever). */
export const PRUNE_DELIVERIES_SCHEDULER_ID = 'prune-webhook-deliveries';
