import { parseCosignTag, type Digest } from '../../common/domain/digest.ts';
import * as tags from '../../common/db/queries/tags.ts';
import { RegistryError } from '../../common/errors.ts';
import { indexJobFor, ResolveTagJob, type ResolveTagData } from '../../common/jobs/index-manifest.ts';
import { implementJob } from '../kit.ts';
import { indexSummary, type IndexDeps, type IndexResult } from './index-manifest.job.ts';

/**
 * Resolves a pushed tag whose notification named no digest, records the tag move (cosign artifact
 * tags are not image tags), then queues the ordinary index job, so the digest is indexed once
 * whoever names it (a webhook with the digest, a backfill, this).
 */
export async function resolveTag(deps: IndexDeps, data: ResolveTagData): Promise<IndexResult> {
  const { registry, repository, tag } = data;
  let digest: Digest;
  try {
    digest = (await deps.registry.getManifest(registry, repository, tag)).digest;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}:${tag} is not in the registry (deleted or moved on?)` };
    }
    throw err;
  }
  if (parseCosignTag(tag) === null) {
    await tags.record(deps.db, registry, repository, tag, digest, new Date(data.eventAt));
  }
  const queued = await deps.enqueueIndex(indexJobFor({ registry, repository, digest, tag, at: data.eventAt }));
  return { result: 'resolved', digest, queued };
}

export function resolveTagJob(deps: IndexDeps) {
  return implementJob(ResolveTagJob, {
    bindings: (data) => ({ registry: data.registry, repository: data.repository, 'image.tag': data.tag, source: data.source }),
    handle: ({ data }) => resolveTag(deps, data),
    result: (outcome) => outcome.result,
    summary: (outcome) => indexSummary(outcome, 'tag'),
  });
}
