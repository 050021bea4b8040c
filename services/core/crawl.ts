import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { DEFAULT_CRAWL_LIMITS, type CrawlLimits } from '../common/config.ts';
import { isDigest, parseCosignTag, type Digest } from '../common/domain/digest.ts';
import { isRepositoryName } from '../common/domain/image-ref.ts';
import * as crawl from '../common/db/queries/crawl.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { RegistryError } from '../common/errors.ts';
import type { Announce } from '../common/events.ts';
import { indexJobFor, type IndexManifestData } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import type { FetchedManifest, ListPage, RegistryClient } from './oci/client.ts';
import { isSignatureArtifact } from './discovery.ts';
import { recordObservedTag } from './tags.ts';

export interface CrawlDeps {
  readonly db: Kysely<DB>;
  readonly registry: RegistryClient;
  /** Adds an index job under its deterministic id (`push-<h>`, `sig-<h>`): webhooks and crawls collapse. */
  readonly enqueueIndex: (data: IndexManifestData) => Promise<string>;
  /**
   * Tells API replicas about the tags the crawl moved. Absent, nobody is told: a replica holding
   * the old digest keeps it until it reloads (tests of the crawl alone).
   */
  readonly announce?: Announce;
  readonly log: Logger;
}

export interface CrawlOptions {
  /** Page size asked of `_catalog` and `tags/list` (`?n=`); registries may return fewer. */
  readonly pageSize?: number;
  /** Tags resolved at once within a repository. */
  readonly concurrency?: number;
  /** Start the catalog from the top even when an earlier crawl was interrupted. */
  readonly restart?: boolean;
  /**
   * Stops the crawl before its next list page or batch of tags (requests in flight finish). The
   * cursor stays at the last repository finished, so the next crawl resumes after it.
   */
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: CrawlProgress) => void;
  /** Bounds on pages and entries (default {@link DEFAULT_CRAWL_LIMITS}). */
  readonly limits?: CrawlLimits;
}

/**
 * What cut a listing short: one of the {@link CrawlLimits}, or the registry linking to a page it
 * had already served (a `last` cursor or a next-page URL seen before in that listing), which is
 * read as the end of that listing. A tag or referrers listing cut short is left there and the crawl
 * goes on; a catalog cut by `list-*`, or any listing by `pass-*`, ends the crawl.
 */
export type CrawlBound = 'list-pages' | 'list-entries' | 'pass-pages' | 'pass-entries' | 'repeated-cursor';

export interface CrawlLimitReached {
  readonly bound: CrawlBound;
  /** The listing cut: the catalog, a repository's tag list, or the referrers of one of its digests. */
  readonly listing: 'catalog' | 'tags' | 'referrers';
  /** Null for the catalog. */
  readonly repository: string | null;
  /** The digest whose referrers were listed; null otherwise. */
  readonly digest: Digest | null;
  /** Pages read and entries taken from that listing when it was cut. */
  readonly pages: number;
  readonly entries: number;
}

/** At most this many bounds reached are kept in a {@link CrawlResult} (all are logged and counted). */
export const MAX_LIMITS_REPORTED = 20;

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
  /** True when every listing was read to its end: not stopped, no bound reached. */
  readonly complete: boolean;
  /**
   * Why the crawl ended before the end of what it was to crawl: the signal, a per-pass bound, or
   * the catalog's own bound; `repository` is where. Null when it got to the end (listings cut short
   * on the way are in `limits`).
   */
  readonly stopped: 'signal' | CrawlBound | null;
  /**
   * A catalog crawl that stopped: the last repository it finished, which the next crawl resumes
   * after (null: from the top). Null too when it was not stopped or crawled one repository.
   */
  readonly resumeAfter: string | null;
  /**
   * Bounds reached, in order: the first {@link MAX_LIMITS_REPORTED}, and the one that stopped the
   * crawl if one did. `limitsReached` counts them all.
   */
  readonly limits: readonly CrawlLimitReached[];
  readonly limitsReached: number;
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
 * moves, as of when the registry answered: that wins over anything older in the ledger. Signature
 * manifests (`sha256-<hex>.sig` tags, cosign referrers) whose signatures are not recorded re-index
 * their image; an image whose recorded signatures came from an artifact the registry no longer
 * shows (deleted, or its tag moved) is rechecked, so they are withdrawn. The catalog position is
 * saved after every repository: an interrupted crawl resumes after the last finished one.
 *
 * Every listing is bounded ({@link CrawlLimits}) and ends where the registry links to a page it
 * has already served, so a registry that always links to a next page cannot keep a crawl running:
 * a tag or referrers listing cut short is reported in `limits` and the crawl goes on with what
 * follows. A catalog that repeats a cursor has ended there. A per-pass bound, or the catalog's own,
 * stops the crawl with its cursor kept, so the next one resumes after the last repository finished.
 *
 * What no registry API lists (manifests pushed by digest only, never tagged nor signed) is out of
 * any crawl's reach; webhooks are the only way to hear of them.
 */
export async function crawlRegistry(deps: CrawlDeps, registry: string, repository: string | null, opts: CrawlOptions = {}): Promise<CrawlResult> {
  const pageSize = opts.pageSize ?? 100;
  const pass = new Pass(opts.limits ?? DEFAULT_CRAWL_LIMITS, opts.signal, deps.log, registry);
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
    id: randomUUID(),
  };
  const progress = () => opts.onProgress?.({ repositories: state.repositories, tags: state.tags, checked: state.checked, queued: state.queued, repository: state.repository });
  const result = (resumedAfter: string | null, resumeAfter: string | null): CrawlResult => ({
    repositories: state.repositories,
    tags: state.tags,
    checked: state.checked,
    queued: state.queued,
    repository: state.repository,
    jobIds: [...state.jobIds],
    tagsRecorded: state.tagsRecorded,
    referrersSkipped: state.referrersSkipped,
    resumedAfter,
    complete: pass.stopped === null && pass.reachedCount === 0,
    stopped: pass.stopped,
    resumeAfter,
    limits: [...pass.reached],
    limitsReached: pass.reachedCount,
  });

  /** False when the signal stopped it before its end. */
  const crawlOne = async (repo: string): Promise<boolean> => {
    state.repository = repo;
    state.repositories++;
    progress();
    return await crawlRepository(deps, pass, registry, repo, pageSize, opts.concurrency ?? 8, state, progress);
  };

  if (repository !== null) {
    await crawlOne(repository);
    return result(null, null);
  }

  const cursor = opts.restart === true ? undefined : await crawl.getCursor(deps.db, registry);
  const resumedAfter = cursor?.lastRepository ?? null;
  if (resumedAfter !== null) {
    deps.log.info({ registry, after: resumedAfter }, 'resuming an interrupted crawl');
  }
  await crawl.saveCursor(deps.db, registry, resumedAfter);
  let finished = resumedAfter;
  const catalog: Listing = { registry, repository: null, digest: null, listing: 'catalog', first: `_catalog?n=${pageSize}${resumedAfter === null ? '' : `&last=${encodeURIComponent(resumedAfter)}`}` };
  const end = await readListing(
    deps,
    pass,
    catalog,
    (body) => parseList(Catalog, body, `${registry} catalog`).repositories ?? [],
    async (names) => {
      for (const name of names) {
        if (pass.shouldStop()) {
          return false;
        }
        if (!isRepositoryName(name)) {
          deps.log.warn({ registry, repository: name.slice(0, 100) }, 'the catalog names an invalid repository; skipped');
          continue;
        }
        if (!(await crawlOne(name))) {
          return false;
        }
        await crawl.saveCursor(deps.db, registry, name);
        finished = name;
      }
      return true;
    },
  );
  if (end === 'stopped' || pass.stopped !== null) {
    return result(resumedAfter, finished);
  }
  await crawl.clearCursor(deps.db, registry);
  return result(resumedAfter, null);
}

/** One crawl's pages and entries against its limits, its signal, and the bounds it reached. */
class Pass {
  pages = 0;
  entries = 0;
  /** Why the crawl must stop: the signal (noted when it left something undone), or a bound. */
  stopped: CrawlResult['stopped'] = null;
  reachedCount = 0;
  readonly reached: CrawlLimitReached[] = [];
  readonly limits: CrawlLimits;
  readonly #signal: AbortSignal | undefined;
  readonly #log: Logger;
  readonly #registry: string;

  constructor(limits: CrawlLimits, signal: AbortSignal | undefined, log: Logger, registry: string) {
    this.limits = limits;
    this.#signal = signal;
    this.#log = log;
    this.#registry = registry;
  }

  /** True, and noted as why the crawl stopped, when the signal says stop. */
  stoppedBySignal(): boolean {
    if (this.#signal?.aborted === true) {
      this.stopped ??= 'signal';
      return true;
    }
    return false;
  }

  /** True when the crawl must stop now: the signal, or a bound that stops it. */
  shouldStop(): boolean {
    return this.stoppedBySignal() || this.stopped !== null;
  }

  reach(r: CrawlLimitReached): void {
    const stops = r.bound === 'pass-pages' || r.bound === 'pass-entries' || (r.listing === 'catalog' && r.bound !== 'repeated-cursor');
    if (stops) {
      this.stopped = r.bound;
    }
    this.reachedCount++;
    if (this.reached.length < MAX_LIMITS_REPORTED || stops) {
      this.reached.push(r);
    }
    this.#log.warn({ registry: this.#registry, ...r }, `crawl bound reached: ${describeLimit(r)}`);
  }
}

/** One operator-readable line for a bound reached. */
export function describeLimit(r: CrawlLimitReached): string {
  const what =
    r.listing === 'catalog' ? 'the catalog' : r.listing === 'tags' ? `the tags of ${r.repository}` : `the referrers of ${r.repository}@${r.digest}`;
  const why: Record<CrawlBound, string> = {
    'repeated-cursor': 'the registry linked to a page it had already served; read as the end of the listing',
    'list-pages': 'cut at SIGNET_CRAWL_MAX_LIST_PAGES pages',
    'list-entries': 'cut at SIGNET_CRAWL_MAX_LIST_ENTRIES entries',
    'pass-pages': 'the crawl stopped at SIGNET_CRAWL_MAX_PASS_PAGES list pages',
    'pass-entries': 'the crawl stopped at SIGNET_CRAWL_MAX_PASS_ENTRIES entries',
  };
  return `${what}: ${why[r.bound]} (after ${r.pages} pages, ${r.entries} entries)`;
}

interface Listing {
  readonly registry: string;
  /** Null for the catalog. */
  readonly repository: string | null;
  /** The digest whose referrers are listed. */
  readonly digest: Digest | null;
  readonly listing: CrawlLimitReached['listing'];
  /** The first page's path, as `listPage` takes it. */
  readonly first: string;
  /** Registry errors that mean the listing is not there (any more). */
  readonly gone?: (err: RegistryError) => boolean;
}

/**
 * Reads a paginated listing, handing each page's entries to `take` (which answers false to stop),
 * until the registry's last page or a bound: the listing's own (pages, entries, a cursor it has
 * already followed), then `end`, for the listing is over as far as this crawl goes; or the pass's
 * (pages, entries) or the signal, then `stopped`. `gone` when the registry answers one of
 * `gone`'s errors.
 */
async function readListing<T>(
  deps: CrawlDeps,
  pass: Pass,
  spec: Listing,
  parse: (body: unknown) => readonly T[],
  take: (entries: readonly T[]) => Promise<boolean> | boolean,
): Promise<'end' | 'gone' | 'stopped'> {
  const { limits } = pass;
  const followed = new Set<string>();
  let pages = 0;
  let entries = 0;
  const cut = (bound: CrawlBound) => pass.reach({ bound, listing: spec.listing, repository: spec.repository, digest: spec.digest, pages, entries });
  for (let next: string | null = spec.first; next !== null; ) {
    if (pass.shouldStop()) {
      return 'stopped';
    }
    if (pass.pages >= limits.passPages) {
      cut('pass-pages');
      return 'stopped';
    }
    if (pass.entries >= limits.passEntries) {
      cut('pass-entries');
      return 'stopped';
    }
    const key = cursorKey(next, spec.first);
    if (followed.has(key)) {
      cut('repeated-cursor');
      return 'end';
    }
    if (pages >= limits.listPages) {
      cut('list-pages');
      return 'end';
    }
    if (entries >= limits.listEntries) {
      cut('list-entries');
      return 'end';
    }
    followed.add(key);
    let page: ListPage;
    try {
      page = await deps.registry.listPage(spec.registry, spec.repository, next);
    } catch (err) {
      if (err instanceof RegistryError && spec.gone?.(err) === true) {
        return 'gone';
      }
      throw err;
    }
    pages++;
    pass.pages++;
    const all = parse(page.body);
    const room = Math.min(limits.listEntries - entries, limits.passEntries - pass.entries);
    const taken = all.length > room ? all.slice(0, room) : all;
    entries += taken.length;
    pass.entries += taken.length;
    if (!(await take(taken))) {
      return 'stopped';
    }
    if (taken.length < all.length) {
      // The page held more than the bounds leave room for.
      if (pass.entries >= limits.passEntries) {
        cut('pass-entries');
        return 'stopped';
      }
      cut('list-entries');
      return 'end';
    }
    next = page.next;
  }
  return 'end';
}

/**
 * What identifies a list request's place in its listing: distribution's `last` cursor when there
 * is one (whatever else the URL carries), else the path and query, with the first page's relative
 * path (`tags/list?n=100`) and the absolute ones of `Link` headers (`/v2/<name>/tags/list?n=100`)
 * alike. Hashed: a registry's URLs can be long.
 */
function cursorKey(path: string, first: string): string {
  const q = path.indexOf('?');
  const [where, query] = q === -1 ? [path, ''] : [path.slice(0, q), path.slice(q + 1)];
  const last = new URLSearchParams(query).getAll('last');
  const endpoint = first.split('?')[0]!;
  const key = last.length > 0 ? `last ${JSON.stringify(last)}` : `path ${where === endpoint || where.endsWith(`/${endpoint}`) ? endpoint : where}?${query}`;
  return createHash('sha256').update(key).digest('base64url');
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
  /** This crawl's id: the event id of the rechecks it queues (a later crawl queues its own). */
  readonly id: string;
}

/** What the registry shows of each image's signature artifacts, as the crawl went. */
interface Shown {
  /** Image → the signature artifacts found for it (`.sig`/`.att` tags, referrers). */
  readonly sources: Map<Digest, Set<Digest>>;
  /** Images whose referrers were listed in full (the API, or the referrers tag's index). */
  readonly referrersListed: Set<Digest>;
}

function show(shown: Shown, image: Digest, source: Digest): void {
  shown.sources.set(image, (shown.sources.get(image) ?? new Set()).add(source));
}

/** One repository's crawl: what the ledger holds for it, and what this crawl found and queued. */
interface RepositoryCrawl {
  readonly deps: CrawlDeps;
  readonly pass: Pass;
  readonly registry: string;
  readonly repository: string;
  readonly ledger: crawl.RepositoryLedger;
  readonly state: CrawlState;
  readonly shown: Shown;
  /** Digests already queued or known present in this crawl: each is enqueued at most once. */
  readonly seen: Set<Digest>;
  enqueue(data: IndexManifestData): Promise<void>;
}

function openRepositoryCrawl(deps: CrawlDeps, pass: Pass, registry: string, repository: string, ledger: crawl.RepositoryLedger, state: CrawlState): RepositoryCrawl {
  return {
    deps,
    pass,
    registry,
    repository,
    ledger,
    state,
    shown: { sources: new Map(), referrersListed: new Set() },
    seen: new Set(),
    async enqueue(data) {
      state.jobIds.add(await deps.enqueueIndex(data));
      state.queued++;
    },
  };
}

/** True the first time a digest the ledger lacks (or holds as deleted) is met in this crawl. */
function needsIndex(rc: RepositoryCrawl, digest: Digest): boolean {
  const known = rc.ledger.manifests.get(digest);
  if (rc.seen.has(digest) || (known !== undefined && !known.deleted)) {
    return false;
  }
  rc.seen.add(digest);
  return true;
}

const now = () => new Date().toISOString();

/** Crawls one repository; false when the signal stopped it before its end. */
async function crawlRepository(
  deps: CrawlDeps,
  pass: Pass,
  registry: string,
  repository: string,
  pageSize: number,
  concurrency: number,
  state: CrawlState,
  progress: () => void,
): Promise<boolean> {
  const tagNames: string[] = [];
  const boundsBefore = pass.reachedCount;
  const listed = await readListing(
    deps,
    pass,
    // A 404: deleted since the catalog listed it.
    { registry, repository, digest: null, listing: 'tags', first: `tags/list?n=${pageSize}`, gone: (err) => err.code === 'NOT_FOUND' },
    (body) => parseList(TagList, body, `${registry}/${repository} tag list`).tags ?? [],
    (page) => {
      tagNames.push(...page);
      return true;
    },
  );
  if (listed === 'gone') {
    return true;
  }
  if (listed === 'stopped' && pass.stoppedBySignal()) {
    return false;
  }
  // A per-pass bound stops the crawl once the tags already listed (and counted) are checked.
  state.tags += tagNames.length;
  progress();
  const rc = openRepositoryCrawl(deps, pass, registry, repository, await crawl.getRepositoryLedger(deps.db, registry, repository), state);
  // Only a tag list read to its end (no bound cut it) says which signature artifacts are gone.
  const allTagsListed = listed === 'end' && pass.reachedCount === boundsBefore;
  for (let i = 0; i < tagNames.length; i += concurrency) {
    if (pass.stoppedBySignal()) {
      return false;
    }
    await Promise.all(tagNames.slice(i, i + concurrency).map((tag) => checkTag(rc, tag)));
    progress();
  }
  return allTagsListed ? recheckGone(rc) : true;
}

/** One tag: an image tag is resolved, recorded and its referrers checked; a signature tag is looked at for its image. */
async function checkTag(rc: RepositoryCrawl, tag: string): Promise<void> {
  const { deps, registry, repository, ledger, state } = rc;
  const cosign = parseCosignTag(tag);
  const referrersTag = REFERRERS_TAG.exec(tag);
  if (cosign !== null || referrersTag !== null) {
    await checkSignatureTag(rc, tag, cosign, cosign?.subject ?? (`sha256:${referrersTag![1]}` as Digest));
    state.checked++;
    return;
  }
  const digest = await resolve(deps, registry, repository, tag);
  const observedAt = new Date();
  state.checked++;
  if (digest === null) {
    return;
  }
  if (needsIndex(rc, digest)) {
    await rc.enqueue(indexJobFor({ registry, repository, digest, tag, at: now() }));
  }
  if (ledger.tags.get(tag) !== digest) {
    await recordObservedTag(deps, { registry, repository, tag, digest, observedAt });
    state.tagsRecorded++;
  }
  await checkReferrers(deps, rc.pass, registry, repository, digest, ledger, state, (data) => rc.enqueue(data), rc.shown);
}

/** A `.sig`/`.att` tag or a referrers-tag index: what it shows for `subject`, and what the ledger lacks of it. */
async function checkSignatureTag(rc: RepositoryCrawl, tag: string, cosign: ReturnType<typeof parseCosignTag>, subject: Digest): Promise<void> {
  const { deps, registry, repository, ledger, shown } = rc;
  if (needsIndex(rc, subject)) {
    // An image the ledger lacks: its index job finds its signatures itself.
    await rc.enqueue({ registry, repository, digest: subject, trigger: { kind: 'push' }, eventAt: now() });
  } else if (cosign?.kind === 'referrers' && ledger.manifests.has(subject)) {
    // The referrers tag schema's index: its signature artifacts are what it shows.
    const index = await resolveManifest(deps, registry, repository, tag);
    const referrers = index?.manifest.kind === 'index' ? index.manifest.manifests.filter((r) => isDigest(r.digest) && isSignatureArtifact(r.artifactType)) : [];
    referrers.forEach((r) => show(shown, subject, r.digest));
    shown.referrersListed.add(subject);
    if (index !== null && referrers.some((r) => !ledger.signatureSources.has(r.digest))) {
      await rc.enqueue(indexJobFor({ registry, repository, digest: index.digest, tag, at: now() }));
    }
  } else if (cosign !== null && cosign.kind !== 'sbom' && ledger.manifests.has(subject)) {
    const sig = await resolve(deps, registry, repository, tag);
    if (sig !== null) {
      show(shown, subject, sig);
    }
    if (sig !== null && !ledger.signatureSources.has(sig)) {
      await rc.enqueue(indexJobFor({ registry, repository, digest: sig, tag, at: now() }));
    }
  }
}

/**
 * Images whose current signatures came from artifacts the registry no longer shows for them (a
 * `.sig` deleted, its tag moved, a referrer removed; no notification need have come): a recheck
 * indexes each again, and what is gone is withdrawn. Images queued above are indexed anyway.
 * False when the signal stopped it.
 */
async function recheckGone(rc: RepositoryCrawl): Promise<boolean> {
  const { deps, pass, registry, repository, ledger, state, shown } = rc;
  for (const [image, recorded] of ledger.currentSources) {
    const gone = () => [...recorded].filter((d) => shown.sources.get(image)?.has(d) !== true);
    if (rc.seen.has(image) || gone().length === 0) {
      continue;
    }
    if (pass.shouldStop()) {
      return !pass.stoppedBySignal();
    }
    if (!shown.referrersListed.has(image)) {
      // An untagged image's referrers were not listed on the way: ask before concluding.
      await checkReferrers(deps, pass, registry, repository, image, ledger, state, (data) => rc.enqueue(data), shown);
    }
    const missing = gone();
    if (missing.length > 0) {
      await rc.enqueue({
        registry,
        repository,
        digest: image,
        trigger: { kind: 'recheck', cause: 'crawl', artifactDigest: missing[0]!, eventId: state.id },
        eventAt: now(),
      });
    }
  }
  return true;
}

/**
 * The referrers of `digest` (OCI 1.1 API, all pages): cosign signature artifacts not yet recorded
 * re-index it. What a listing read to its end shows is noted in `shown`.
 */
async function checkReferrers(
  deps: CrawlDeps,
  pass: Pass,
  registry: string,
  repository: string,
  digest: Digest,
  ledger: crawl.RepositoryLedger,
  state: CrawlState,
  enqueue: (data: IndexManifestData) => Promise<void>,
  shown: Shown,
): Promise<void> {
  if (!state.referrersApi) {
    return;
  }
  const boundsBefore = pass.reachedCount;
  const listed = await readListing(
    deps,
    pass,
    {
      registry,
      repository,
      digest,
      listing: 'referrers',
      first: `referrers/${digest}`,
      gone: (err) => err.code === 'NOT_FOUND' || err.code === 'INVALID',
    },
    (body) => parseList(Referrers, body, `${registry}/${repository} referrers of ${digest}`).manifests ?? [],
    async (manifests) => {
      for (const r of manifests) {
        if (isDigest(r.digest) && isSignatureArtifact(r.artifactType)) {
          show(shown, digest, r.digest);
        }
        if (!isDigest(r.digest) || ledger.signatureSources.has(r.digest)) {
          continue;
        }
        if (isSignatureArtifact(r.artifactType)) {
          await enqueue({ registry, repository, digest, trigger: { kind: 'signature', artifactDigest: r.digest, tag: '' }, eventAt: new Date().toISOString() });
        } else {
          state.referrersSkipped++;
        }
      }
      return true;
    },
  );
  if (listed === 'gone') {
    // No referrers API (distribution 2.x answers 404): the `sha256-<hex>` fallback tags are crawled instead.
    state.referrersApi = false;
  } else if (listed === 'end' && pass.reachedCount === boundsBefore) {
    // Read to its end (a bound reached meanwhile, even by another listing, leaves it unsure).
    shown.referrersListed.add(digest);
  }
}

/** The digest a tag points at now, or null when it went away since it was listed. */
async function resolve(deps: CrawlDeps, registry: string, repository: string, tag: string): Promise<Digest | null> {
  return (await resolveManifest(deps, registry, repository, tag))?.digest ?? null;
}

/** The manifest a tag points at now, or null when it went away since it was listed (or is unusable). */
async function resolveManifest(deps: CrawlDeps, registry: string, repository: string, tag: string): Promise<FetchedManifest | null> {
  try {
    return await deps.registry.getManifest(registry, repository, tag);
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
