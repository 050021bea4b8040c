import type { z } from 'zod';
import type { JobDefinition } from './define-job.ts';
import { IndexManifestJob, LearnImageJob, ResolveTagJob } from './index-manifest.ts';
import { NotifyOwnershipChangeJob } from './notify-ownership-change.ts';
import { PruneAdmissionsJob } from './prune-admissions.ts';
import { PrunePolicyVersionsJob } from './prune-policy-versions.ts';
import { PruneDeliveriesJob } from './prune-deliveries.ts';
import { ReconcileJob } from './reconcile.ts';
import { RedecideExpiredJob } from './redecide-expired.ts';

/**
 * Every job Signet defines. A worker refuses to start on a queue for which one of these has no
 * handler (`worker/kit.ts`), so a job added here without an implementation fails at start, not in
 * Redis.
 */
export const JOBS: readonly JobDefinition<z.ZodType>[] = [IndexManifestJob, LearnImageJob, ResolveTagJob, ReconcileJob, NotifyOwnershipChangeJob, PruneDeliveriesJob, PruneAdmissionsJob, PrunePolicyVersionsJob, RedecideExpiredJob];
