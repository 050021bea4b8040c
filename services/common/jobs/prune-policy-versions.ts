import { z } from 'zod';
import { definePassJob } from './define-job.ts';
import { MAINTENANCE_QUEUE } from './prune-deliveries.ts';

export const PrunePolicyVersionsData = z.object({});
export type PrunePolicyVersionsData = z.infer<typeof PrunePolicyVersionsData>;

/**
 * One pass of the policy versions' retention: deletes, in bounded batches, the decisions of the
 * policy versions retired longer ago than SIGNET_POLICY_VERSION_RETENTION (every policy change
 * otherwise leaves a row per image behind). Scheduled like the delivery prune (one pass per
 * interval across all worker replicas), on the same maintenance queue.
 */
export const PrunePolicyVersionsJob = definePassJob('prune-policy-versions', MAINTENANCE_QUEUE, PrunePolicyVersionsData);

/** The job scheduler's id: upserted at worker start, removed when the retention is 0 (keep forever). */
export const PRUNE_POLICY_VERSIONS_SCHEDULER_ID = 'prune-policy-versions';
