import { z } from 'zod';
import { defineJob } from './define-job.ts';

export const ALERTS_QUEUE = 'alerts';

export const NotifyOwnershipChangeData = z.object({
  /** ownership_changes.id */
  changeId: z.string().regex(/^[0-9]{1,19}$/),
});
export type NotifyOwnershipChangeData = z.infer<typeof NotifyOwnershipChangeData>;

/**
 * Send one ownership-drift alert to SIGNET_ALERT_WEBHOOK_URL. One job per change (id
 * `ownership-<changeId>`), so the start-up sweep of undelivered alerts never sends one twice.
 */
export const NotifyOwnershipChangeJob = defineJob({
  name: 'notify-ownership-change',
  queue: ALERTS_QUEUE,
  schema: NotifyOwnershipChangeData,
  jobId: (d) => `ownership-${d.changeId}`,
  options: {
    attempts: 10,
    backoff: { type: 'exponential', delay: 5_000 },
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
});
