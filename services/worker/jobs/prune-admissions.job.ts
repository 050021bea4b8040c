import * as admissions from '../../common/db/queries/admissions.ts';
import { PruneAdmissionsJob } from '../../common/jobs/prune-admissions.ts';
import type { JobImplementation } from '../kit.ts';
import { type PruneDeliveriesDeps, retentionPass } from './prune-deliveries.job.ts';

/** Deletes the admission records past SIGNET_ADMISSION_RETENTION (`retentionMs`; never 0 here). */
export function pruneAdmissionsJob(deps: PruneDeliveriesDeps): JobImplementation {
  return retentionPass(PruneAdmissionsJob, admissions.pruneBatch, deps);
}
