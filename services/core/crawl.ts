import type { Kysely } from 'kysely';
import { z } from 'zod';
import { isDigest, parseCosignTag, type Digest } from '../common/domain/digest.ts';
import { isRepositoryName } from '../common/domain/image-ref.ts';
import * as crawl from '../common/db/queries/crawl.ts';
import * as tags from '../common/db/queries/tags.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { RegistryError } from '../common/errors.ts';
import { indexJobFor, type IndexManifestData } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import type { RegistryClient } from './oci/client.ts';
import { isSignatureArtifact } from './discovery.ts';

export interface CrawlDeps {
  readonly db: Kysely<DB>;
  readonly registry: RegistryClient;
  /** Adds an index job under its deterministic id (`push-<h>`, `sig-<h>`): webhooks and crawls collapse. */
  readonly enqueueIndex: (data: IndexManifestData) => Promise<string>;
  readonly log: Logger;
}

export interface CrawlOptions {
  /** Page size asked of `_catalog` and `tags/list` (`?n=`); registries may return fewer. */
  readonly pageSize?: number;
  /** Tags resolved at once within a repository. */
  readonly concurrency?: number;
  /** Start the catalog from the top even when an earlier crawl was interrupted. */
  readonly restart?: boolean;
  /** Stops between repositories (the cursor is saved, so the next crawl resumes there). */
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: CrawlProgress) => void;
}

export interface CrawlProgress {
  readonly repositories: number;
  readonly tags: number;
  /** Tags whose manifest was compared against the ledger. */
  readonly checked: number;
  readonly queued: number;
  readonly repository: string | null;
}

export interface CrawlResult extends CrawlProgress {
  /** Index jobs added (or collapsed onto existing ones) for digests the ledger lacked. */
  readonly jobIds: readonly string[];
  /** Tags the ledger lacked or had pointing elsewhere: each is a tag-history row. */
  readonly tagsRecorded: number;
  /** Referrers seen that are not signatures or Sigstore bundles (SBOMs, Notary signatures, …). */
  readonly referrersSkipped: number;
  /** The repository an interrupted crawl had finished, where this one resumed after. */
  readonly resumedAfter: string | null;
  /** False when stopped by the signal before the end. */
  readonly complete: boolean;
}

const Catalog = z.looseObject({ repositories: z.array(z.string()).nullish() });
const TagList = z.looseObject({ tags: z.array(z.string()).nullish() });
const Referrers = z.looseObject({
  manifests: z.array(z.looseObject({ digest: z.string(), artifactType: z.string().optional() })).nullish(),
});

/** The referrers tag schema's fallback tag: `sha256-<hex>` with no suffix. */
const REFERRERS_TAG = /^sha256-([0-9a-f]{64})$/;

/**
 * Reconciliation crawl: lists the registry's repositories (`_catalog`) or one repository, their
 * tags, and each digest's referrers (following `Link` pagination), compares what it finds with the
 * ledger and queues an index job for every digest the ledger lacks (deterministic job ids, so what
 * a webhook already queued collapses). Tags the ledger has pointing elsewhere are recorded as tag
 * moves. Signature manifests (`sha256-<hex>.sig` tags, cosign referrers) whose signatures are not
 * recorded re-index their image. The catalog position is saved after every repository: an
 * interrupted crawl resumes after the last finished one.
 *
 * What no registry API lists (manifests pushed by digest only, never tagged nor signed) is out of
 * any crawl's reach; webhooks are the only way to hear of them.
 */
export async function crawlRegistry(deps: CrawlDeps, registry: string, repository: string | null, opts: CrawlOptions = {}): Promise<CrawlResult> {
  const pageSize = opts.pageSize ?? 100;
  const state = {
    repositories: 0,
    tags: 0,
    checked: 0,
    queued: 0,
    tagsRecorded: 0,
    referrersSkipped: 0,
    repository: null as string | null,
    jobIds: new Set<string>(),
    referrersApi: true,
  };
  const progress = () => opts.onProgress?.({ repositories: state.repositories, tags: state.tags, checked: state.checked, queued: state.queued, repository: state.repository });
  const result = (complete: boolean, resumedAfter: string | null): CrawlResult => ({
    repositories: state.repositories,
    tags: state.tags,
    checked: state.checked,
    queued: state.queued,
    repository: state.repository,
    jobIds: [...state.jobIds],
    tagsRecorded: state.tagsRecorded,
    referrersSkipped: state.referrersSkipped,
    resumedAfter,
    complete,
  });

  const crawlOne = async (repo: string) => {
    state.repository = repo;
    state.repositories++;
    progress();
    await crawlRepository(deps, registry, repo, pageSize, opts.concurrency ?? 8, state, progress);
  };

  if (repository !== null) {
    await crawlOne(repository);
    return result(true, null);
  }

  const cursor = opts.restart === true ? undefined : await crawl.getCursor(deps.db, registry);
  const resumedAfter = cursor?.lastRepository ?? null;
  if (resumedAfter !== null) {
    deps.log.info({ registry, after: resumedAfter }, 'resuming an interrupted crawl');
  }
  await crawl.saveCursor(deps.db, registry, resumedAfter);
  let next: string | null = `_catalog?n=${pageSize}${resumedAfter === null ? '' : `&last=${encodeURIComponent(resumedAfter)}`}`;
  while (next !== null) {
    const page = await deps.registry.listPage(registry, null, next);
    const names = parseList(Catalog, page.body, `${registry} catalog`).repositories ?? [];
    for (const name of names) {
      if (opts.signal?.aborted === true) {
        return result(false, resumedAfter);
      }
      if (!isRepositoryName(name)) {
        deps.log.warn({ registry, repository: name.slice(0, 100) }, 'the catalog names an invalid repository; skipped');
        continue;
      }
      await crawlOne(name);
      await crawl.saveCursor(deps.db, registry, name);
    }
    next = page.next;
  }
  await crawl.clearCursor(deps.db, registry);
  return result(true, resumedAfter);
}

interface CrawlState {
  tags: number;
  checked: number;
  queued: number;
  tagsRecorded: number;
  referrersSkipped: number;
  jobIds: Set<string>;
  /** Cleared the first time the registry answers the referrers API with 404 (distribution 2.x). */
  referrersApi: boolean;
}

async function crawlRepository(
  deps: CrawlDeps,
  registry: string,
  repository: string,
  pageSize: number,
  concurrency: number,
  state: CrawlState,
  progress: () => void,
): Promise<void> {
  const tagNames: string[] = [];
  let next: string | null = `tags/list?n=${pageSize}`;
  while (next !== null) {
    let page;
    try {
      page = await deps.registry.listPage(registry, repository, next);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
        return; // deleted since the catalog listed it
      }
      throw err;
    }
    tagNames.push(...(parseList(TagList, page.body, `${registry}/${repository} tag list`).tags ?? []));
    next = page.next;
  }
  state.tags += tagNames.length;
  progress();
  const ledger = await crawl.getRepositoryLedger(deps.db, registry, repository);
  /** Digests already queued or known present in this crawl: each is enqueued at most once. */
  const seen = new Set<Digest>();
  const enqueue = async (data: IndexManifestData) => {
    state.jobIds.add(await deps.enqueueIndex(data));
    state.queued++;
  };
  const needsIndex = (digest: Digest) => {
    const known = ledger.manifests.get(digest);
    if (seen.has(digest) || (known !== undefined && !known.deleted)) {
      return false;
    }
    seen.add(digest);
    return true;
  };
  const now = () => new Date().toISOString();

  const checkTag = async (tag: string): Promise<void> => {
    const cosign = parseCosignTag(tag);
    const referrersTag = REFERRERS_TAG.exec(tag);
    if (cosign !== null || referrersTag !== null) {
      const subject = cosign?.subject ?? (`sha256:${referrersTag![1]}` as Digest);
      if (needsIndex(subject)) {
        // An image the ledger lacks: its index job finds its signatures itself.
        await enqueue({ registry, repository, digest: subject, trigger: { kind: 'push' }, eventAt: now() });
      } else if (cosign !== null && cosign.kind !== 'sbom' && ledger.manifests.has(subject)) {
        const sig = await resolve(deps, registry, repository, tag);
        if (sig !== null && !ledger.signatureSources.has(sig)) {
          await enqueue(indexJobFor({ registry, repository, digest: sig, tag, at: now() }));
        }
      }
      state.checked++;
      return;
    }
    const digest = await resolve(deps, registry, repository, tag);
    state.checked++;
    if (digest === null) {
      return;
    }
    if (needsIndex(digest)) {
      await enqueue(indexJobFor({ registry, repository, digest, tag, at: now() }));
    }
    if (ledger.tags.get(tag) !== digest) {
      await tags.record(deps.db, registry, repository, tag, digest, new Date());
      state.tagsRecorded++;
    }
    await checkReferrers(deps, registry, repository, digest, ledger, state, enqueue);
  };

  for (let i = 0; i < tagNames.length; i += concurrency) {
    await Promise.all(tagNames.slice(i, i + concurrency).map(checkTag));
    progress();
  }
}

/** The referrers of `digest` (OCI 1.1 API, all pages): cosign signature artifacts not yet recorded re-index it. */
async function checkReferrers(
  deps: CrawlDeps,
  registry: string,
  repository: string,
  digest: Digest,
  ledger: crawl.RepositoryLedger,
  state: CrawlState,
  enqueue: (data: IndexManifestData) => Promise<void>,
): Promise<void> {
  if (!state.referrersApi) {
    return;
  }
  let next: string | null = `referrers/${digest}`;
  while (next !== null) {
    let page;
    try {
      page = await deps.registry.listPage(registry, repository, next);
    } catch (err) {
      if (err instanceof RegistryError && (err.code === 'NOT_FOUND' || err.code === 'INVALID')) {
        // No referrers API (distribution 2.x answers 404): the `sha256-<hex>` fallback tags are crawled instead.
        state.referrersApi = false;
        return;
      }
      throw err;
    }
    for (const r of parseList(Referrers, page.body, `${registry}/${repository} referrers of ${digest}`).manifests ?? []) {
      if (!isDigest(r.digest) || ledger.signatureSources.has(r.digest)) {
        continue;
      }
      if (isSignatureArtifact(r.artifactType)) {
        await enqueue({ registry, repository, digest, trigger: { kind: 'signature', artifactDigest: r.digest, tag: '' }, eventAt: new Date().toISOString() });
      } else {
        state.referrersSkipped++;
      }
    }
    next = page.next;
  }
}

/** The digest a tag points at now, or null when it went away since it was listed. */
async function resolve(deps: CrawlDeps, registry: string, repository: string, tag: string): Promise<Digest | null> {
  try {
    return (await deps.registry.getManifest(registry, repository, tag)).digest;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return null;
    }
    if (err instanceof RegistryError && (err.code === 'INVALID' || err.code === 'TOO_LARGE')) {
      // A hostile or unusable manifest under this tag: say so and go on with the others.
      deps.log.warn({ registry, repository, tag, err }, 'cannot read the manifest a tag names; skipped');
      return null;
    }
    throw err;
  }
}

function parseList<S extends z.ZodType>(schema: S, body: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new RegistryError('INVALID', `${what}: unexpected JSON (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  }
  return parsed.data;
}
