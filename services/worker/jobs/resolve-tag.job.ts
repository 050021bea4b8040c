import { setTimeout as sleep } from 'node:timers/promises';
import { parseCosignTag, type Digest } from '../../common/domain/digest.ts';
import { RegistryError } from '../../common/errors.ts';
import { indexJobFor, ResolveTagJob, type ResolveTagData } from '../../common/jobs/index-manifest.ts';
import { recordObservedTag } from '../../core/tags.ts';
import { implementJob } from '../kit.ts';
import { indexSummary, type IndexDeps, type IndexResult } from './index-manifest.job.ts';

/**
 * How many runs of the job look the tag up while the registry does not show the digest its webhook
 * named: the first run and its first retries (2 s, 4 s, 8 s later). After that the registry's
 * answer stands, and the job completes.
 */
export const HINT_CHECKS = 4;

/**
 * Within one run, the pauses before looking again while the registry does not show the named
 * digest: distribution notifies about a manifest push before it links the tag, so the first look
 * often finds the tag missing or still on its previous digest.
 */
const QUICK_LOOKS_MS = [100, 400];

/** The registry does not (yet) show what the webhook said: BullMQ runs the job again with backoff. */
export class TagNotConfirmedError extends Error {}

/**
 * Resolves a pushed tag in the registry, records what the registry answers as the tag move (cosign
 * artifact tags are not image tags), then queues the ordinary index job, so the digest is indexed
 * once whoever names it (a webhook with the digest, a backfill, this). The digest a webhook named
 * with the tag (`data.digest`) is only a hint: it decides whether to look again, and is indexed as
 * a pushed manifest once the registry confirmed it or the looks are over — never recorded as the
 * tag's target. Indexing it after the look means that when the registry agrees, the tag is in the
 * ledger before its image is. `attempt` is how many runs of the job failed before this one.
 */
export async function resolveTag(deps: IndexDeps, data: ResolveTagData, attempt = 0): Promise<IndexResult> {
  const { registry, repository, tag, digest: hint } = data;
  const lookAgain = hint !== undefined && attempt + 1 < HINT_CHECKS;
  const index = (digest: Digest) => deps.enqueueIndex(indexJobFor({ registry, repository, digest, tag, at: data.eventAt }));
  let seen = await lookUp(deps, registry, repository, tag);
  for (const ms of hint === undefined ? [] : QUICK_LOOKS_MS) {
    if (seen?.digest === hint) {
      break;
    }
    await sleep(ms);
    seen = await lookUp(deps, registry, repository, tag);
  }
  if (seen === null) {
    if (lookAgain) {
      throw new TagNotConfirmedError(`${registry}/${repository}:${tag} is not in the registry (yet?): looking again`);
    }
    if (hint !== undefined) {
      await index(hint);
    }
    return { result: 'not_found', reason: `${registry}/${repository}:${tag} is not in the registry (deleted or moved on?)` };
  }
  const { digest, observedAt } = seen;
  if (parseCosignTag(tag) === null) {
    await recordObservedTag(deps, { registry, repository, tag, digest, observedAt });
  }
  const queued = await index(digest);
  if (hint === undefined || hint === digest) {
    return { result: 'resolved', digest, queued };
  }
  if (lookAgain) {
    throw new TagNotConfirmedError(`${registry}/${repository}:${tag} points at ${digest} in the registry, not at ${hint} as the webhook said: looking again`);
  }
  await index(hint);
  return { result: 'unconfirmed', digest, queued };
}

/** What the registry answers for the tag now, and when it answered; null when it has no such tag. */
async function lookUp(deps: IndexDeps, registry: string, repository: string, tag: string): Promise<{ digest: Digest; observedAt: Date } | null> {
  try {
    const { digest } = await deps.registry.getManifest(registry, repository, tag);
    return { digest, observedAt: new Date() };
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return null;
    }
    throw err;
  }
}

export function resolveTagJob(deps: IndexDeps) {
  return implementJob(ResolveTagJob, {
    bindings: (data) => ({ registry: data.registry, repository: data.repository, 'image.tag': data.tag, source: data.source }),
    handle: ({ data, job }) => resolveTag(deps, data, job.attemptsMade),
    result: (outcome) => outcome.result,
    summary: (outcome) => indexSummary(outcome, 'tag'),
  });
}
