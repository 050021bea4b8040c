import type { Kysely } from 'kysely';
import * as redecision from '../../common/db/queries/redecision.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { PrunePolicyVersionsJob } from '../../common/jobs/prune-policy-versions.ts';
import { implementJob, type JobImplementation } from '../kit.ts';

/** Image ids per statement of a prune (about as many rows: one decision per image and version). */
export const PRUNE_RANGE = 5_000n;

/**
 * Deletes the decisions of the policy versions retired more than SIGNET_POLICY_VERSION_RETENTION
 * ago (`retentionMs`; never 0 here), a range of image ids per transaction; a version that comes
 * back into use meanwhile (a rollback's pass) is left with what it still holds.
 */
export function prunePolicyVersionsJob(deps: { readonly db: Kysely<DB>; readonly retentionMs: number; readonly range?: bigint }): JobImplementation {
  const range = deps.range ?? PRUNE_RANGE;
  return implementJob(PrunePolicyVersionsJob, {
    async handle({ signal }) {
      let deleted = 0;
      let versions = 0;
      let statements = 0;
      for (const version of await redecision.retiredVersions(deps.db, deps.retentionMs)) {
        const end = BigInt(await redecision.maxImageId(deps.db));
        for (let lo = 0n; lo < end; lo += range) {
          if (signal.aborted) {
            return { deleted, versions, statements, complete: false };
          }
          const n = await redecision.pruneRange(deps.db, version, deps.retentionMs, String(lo), String(lo + range));
          statements += 1;
          if (n === null) {
            break;
          }
          deleted += n;
        }
        versions += 1;
      }
      return { deleted, versions, statements, complete: true };
    },
    result: (r) => (r.complete ? 'pruned' : 'interrupted'),
    summary: (r) => ({ deleted: r.deleted, versions: r.versions, statements: r.statements, retentionMs: deps.retentionMs }),
  });
}
