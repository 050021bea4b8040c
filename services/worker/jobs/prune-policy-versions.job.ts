import type { Kysely } from 'kysely';
import * as redecision from '../../common/db/queries/redecision.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { PrunePolicyVersionsJob } from '../../common/jobs/prune-policy-versions.ts';
import { implementJob, type JobImplementation } from '../kit.ts';

/** Image ids per statement of a prune (about as many rows: one decision per image and version). */
const PRUNE_RANGE = 5_000n;

/**
 * Deletes the decisions of the policy versions retired more than SIGNET_POLICY_VERSION_RETENTION
 * ago (`retentionMs`; never 0 here): {@link redecision.pruneRetired}, stopped at shutdown.
 */
export function prunePolicyVersionsJob(deps: { readonly db: Kysely<DB>; readonly retentionMs: number }): JobImplementation {
  return implementJob(PrunePolicyVersionsJob, {
    handle: ({ signal }) => redecision.pruneRetired(deps.db, deps.retentionMs, PRUNE_RANGE, () => signal.aborted),
    result: (r) => (r.complete ? 'pruned' : 'interrupted'),
    summary: (r) => ({ deleted: r.deleted, versions: r.versions, statements: r.statements, retentionMs: deps.retentionMs }),
  });
}
