import { isDigest, type Digest } from '../../common/domain/digest.ts';
import { RegistryError } from '../../common/errors.ts';
import { LearnImageJob, type LearnImageData } from '../../common/jobs/index-manifest.ts';
import type { Logger } from '../../common/logger.ts';
import { recordObservedTag } from '../../core/tags.ts';
import { implementJob } from '../kit.ts';
import { indexManifest, indexSummary, type IndexDeps, type IndexResult } from './index-manifest.job.ts';

/**
 * Indexes an image an admission point asked about: resolves the reference (tag or digest) in the
 * registry, records the tag, then indexes the digest as a push would.
 */
export async function learnImage(deps: IndexDeps, data: LearnImageData, log: Logger): Promise<IndexResult> {
  const { registry, repository, reference } = data;
  let digest: Digest;
  try {
    digest = isDigest(reference) ? reference : (await deps.registry.getManifest(registry, repository, reference)).digest;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}:${reference} is not in the registry` };
    }
    throw err;
  }
  const observedAt = new Date();
  const result = await indexManifest(deps, { registry, repository, digest, trigger: { kind: 'push' }, eventAt: new Date().toISOString() }, log);
  if (!isDigest(reference) && result.result === 'indexed') {
    await recordObservedTag(deps, { registry, repository, tag: reference, digest, observedAt });
  }
  return result;
}

export function learnImageJob(deps: IndexDeps) {
  return implementJob(LearnImageJob, {
    bindings: (data) => ({ registry: data.registry, repository: data.repository, 'image.reference': data.reference }),
    handle: ({ data, log }) => learnImage(deps, data, log),
    result: (outcome) => outcome.result,
    summary: (outcome) => indexSummary(outcome, 'learn'),
  });
}
