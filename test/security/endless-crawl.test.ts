// A registry whose catalog or tag lists always link to a next page must not keep a crawl (backfill
// or the scheduled reconciliation) running forever: every listing is bounded and ends at a cursor
// it has already followed, the bound reached is the crawl's outcome, and `signet backfill` stops
// cleanly on SIGTERM with a cursor the next backfill resumes from.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CRAWL_LIMITS, type CrawlLimits } from '../../services/common/config.ts';
import type { IndexManifestData } from '../../services/common/jobs/index-manifest.ts';
import { createLogger } from '../../services/common/logger.ts';
import { crawlRegistry, type CrawlOptions } from '../../services/core/crawl.ts';
import { createRegistryClient } from '../../services/core/oci/client.ts';
import { runSignetCli, startSignetCli, type RunningCli } from '../helpers/cli.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { startHostileRegistry, type HostileBehaviour, type HostileRegistry } from '../helpers/hostile-registry.ts';
import { deleteQueueKeys, eventually, TEST_REDIS_URL } from '../helpers/signet.ts';

const log = createLogger({ logLevel: 'silent' });
/** Before the bounds, each of these crawls ran until the test timed out: fail fast instead. */
const TIMEOUT = 20_000;

let db: TestDb;
let hostile: HostileRegistry;

beforeAll(async () => {
  db = await createTestDb();
});

afterAll(async () => {
  await db?.drop();
});

/** A fresh registry (so a fresh host, with no crawl cursor) for each test. */
beforeEach(async () => {
  hostile = await startHostileRegistry({ repositories: [], catalog: 'end', tags: () => 'end' });
});

afterEach(async () => {
  await hostile.close();
});

function crawl(behaviour: HostileBehaviour, opts: Omit<CrawlOptions, 'limits'> & { limits?: Partial<CrawlLimits> } = {}) {
  hostile.behave(behaviour);
  const registry = createRegistryClient({ insecureHosts: [hostile.host], timeoutMs: 5_000, retries: 0, maxManifestBytes: 1 << 20, log });
  const queued: IndexManifestData[] = [];
  const deps = { db: db.db, registry, log, enqueueIndex: (d: IndexManifestData) => Promise.resolve(String(queued.push(d))) };
  return crawlRegistry(deps, hostile.host, null, { ...opts, limits: { ...DEFAULT_CRAWL_LIMITS, ...opts.limits } });
}

async function cursor(): Promise<string | null | undefined> {
  const row = await db.db.selectFrom('crawl_cursors').select('last_repository').where('registry', '=', hostile.host).executeTakeFirst();
  return row?.last_repository;
}

describe('a crawl of a registry whose listings never end', () => {
  it(
    'a catalog that links back to a page it served ends there; what it listed is crawled',
    async () => {
      const result = await crawl({ repositories: ['a/one', 'b/two'], catalog: 'repeat-cursor', tags: () => 'end' });
      expect(result).toMatchObject({ repositories: 2, tags: 2, complete: false, stopped: null, resumeAfter: null, limitsReached: 1 });
      expect(result.limits).toEqual([{ bound: 'repeated-cursor', listing: 'catalog', repository: null, digest: null, pages: 1, entries: 2 }]);
      // One catalog page, and each repository's tag list and its one tag's manifest.
      expect(hostile.counts).toMatchObject({ catalog: 1, manifests: 2, total: 5 });
      expect(await cursor()).toBeUndefined(); // the catalog ended there: the next crawl starts from the top
    },
    TIMEOUT,
  );

  it(
    'a catalog that always links to a new cursor stops at the per-pass or per-listing page bound, its cursor kept for the next pass',
    async () => {
      const behaviour: HostileBehaviour = { repositories: ['a/one', 'b/two'], catalog: 'new-cursor', tags: () => 'end' };
      const result = await crawl(behaviour, { limits: { passPages: 50 } });
      expect(result).toMatchObject({ repositories: 2, complete: false, stopped: 'pass-pages', repository: 'b/two', resumeAfter: 'b/two', limitsReached: 1 });
      expect(result.limits).toEqual([{ bound: 'pass-pages', listing: 'catalog', repository: null, digest: null, pages: 48, entries: 2 }]);
      // 50 list pages (48 of the catalog, two tag lists) and the two manifests.
      expect(hostile.counts).toMatchObject({ catalog: 48, total: 52 });
      expect(await cursor()).toBe('b/two');

      // The next pass resumes after b/two, into the endless empty pages, cut at 20 of them.
      const next = await crawl(behaviour, { limits: { listPages: 20 } });
      expect(next).toMatchObject({ resumedAfter: 'b/two', repositories: 0, stopped: 'list-pages', resumeAfter: 'b/two' });
      expect(next.limits).toEqual([{ bound: 'list-pages', listing: 'catalog', repository: null, digest: null, pages: 20, entries: 0 }]);
      expect(hostile.counts).toMatchObject({ catalog: 48 + 20, total: 52 + 20 });
      expect(await cursor()).toBe('b/two');
    },
    TIMEOUT,
  );

  it(
    'a tag list that cycles through cursors ends at the first one repeated; the next repository is still crawled',
    async () => {
      const result = await crawl({ repositories: ['a/cycle', 'b/fine'], catalog: 'end', tags: (r) => (r === 'a/cycle' ? 'repeat-cursor' : 'end') });
      expect(result).toMatchObject({ repositories: 2, tags: 4, complete: false, stopped: null, limitsReached: 1 });
      expect(result.limits).toEqual([{ bound: 'repeated-cursor', listing: 'tags', repository: 'a/cycle', digest: null, pages: 3, entries: 3 }]);
      expect(Object.fromEntries(hostile.counts.tags)).toEqual({ 'a/cycle': 3, 'b/fine': 1 });
      expect(await cursor()).toBeUndefined();
    },
    TIMEOUT,
  );

  it(
    'a tag list that always links to a new cursor is cut at the per-listing page bound; the next repository is still crawled',
    async () => {
      const result = await crawl({ repositories: ['a/endless', 'b/fine'], catalog: 'end', tags: (r) => (r === 'a/endless' ? 'new-cursor' : 'end') }, { limits: { listPages: 30 } });
      expect(result).toMatchObject({ repositories: 2, tags: 301, checked: 301, complete: false, stopped: null, limitsReached: 1 });
      expect(result.limits).toEqual([{ bound: 'list-pages', listing: 'tags', repository: 'a/endless', digest: null, pages: 30, entries: 300 }]);
      expect(Object.fromEntries(hostile.counts.tags)).toEqual({ 'a/endless': 30, 'b/fine': 1 });
      expect(hostile.counts.total).toBe(1 + 31 + 301);
    },
    TIMEOUT,
  );

  it(
    'entries are bounded per listing and per pass; the per-pass bound ends the crawl and the next pass resumes after it',
    async () => {
      const behaviour: HostileBehaviour = { repositories: ['a/endless', 'b/fine'], catalog: 'end', tags: (r) => (r === 'a/endless' ? 'new-cursor' : 'end') };
      const perRepository = await crawl(behaviour, { limits: { listEntries: 55 } });
      expect(perRepository).toMatchObject({ repositories: 2, tags: 56, stopped: null });
      expect(perRepository.limits).toEqual([{ bound: 'list-entries', listing: 'tags', repository: 'a/endless', digest: null, pages: 6, entries: 55 }]);
      expect(hostile.counts.tags.get('a/endless')).toBe(6);

      // 2 repositories from the catalog, then 38 tags: b/fine is left to the next pass.
      const perPass = await crawl(behaviour, { limits: { passEntries: 40 } });
      expect(perPass).toMatchObject({ repositories: 1, tags: 38, checked: 38, stopped: 'pass-entries', resumeAfter: 'a/endless' });
      expect(perPass.limits).toEqual([{ bound: 'pass-entries', listing: 'tags', repository: 'a/endless', digest: null, pages: 4, entries: 38 }]);
      expect(await cursor()).toBe('a/endless');
      const next = await crawl(behaviour);
      expect(next).toMatchObject({ resumedAfter: 'a/endless', repositories: 1, tags: 1, complete: true, limits: [] });
    },
    TIMEOUT,
  );

  it(
    'the signal stops it inside a never-ending tag list under the default bounds; the cursor stays at the last repository finished',
    async () => {
      const stop = new AbortController();
      const running = crawl({ repositories: ['a/first', 'b/endless'], catalog: 'end', tags: (r) => (r === 'b/endless' ? 'new-cursor' : 'end') }, { signal: stop.signal });
      await eventually(() => Promise.resolve((hostile.counts.tags.get('b/endless') ?? 0) >= 20 ? true : undefined), 'the crawl deep in the endless tag list', 10_000);
      stop.abort();
      const pagesAtAbort = hostile.counts.tags.get('b/endless')!;
      const result = await running;
      expect(result).toMatchObject({ stopped: 'signal', complete: false, repository: 'b/endless', resumeAfter: 'a/first', limitsReached: 0 });
      expect(hostile.counts.tags.get('b/endless')).toBeLessThanOrEqual(pagesAtAbort + 1); // at most the page in flight
      expect(await cursor()).toBe('a/first');

      const resumed = await crawl({ repositories: ['a/first', 'b/endless'], catalog: 'end', tags: () => 'end' });
      expect(resumed).toMatchObject({ resumedAfter: 'a/first', repositories: 1, complete: true });
      expect(hostile.catalogPaths.at(-1)).toContain('last=a%2Ffirst');
      expect(await cursor()).toBeUndefined();
    },
    TIMEOUT,
  );
});

describe('signet backfill against it', () => {
  const prefix = `signet-test-${randomBytes(4).toString('hex')}`;
  const running: RunningCli[] = [];
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    SIGNET_QUEUE_PREFIX: prefix,
    SIGNET_INSECURE_REGISTRIES: hostile.host,
    SIGNET_REGISTRY_RETRIES: '0',
    ...extra,
  });
  const start = (extra?: Record<string, string>) => {
    const cli = startSignetCli(['backfill', hostile.host], env(extra));
    running.push(cli);
    return cli;
  };
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

  afterEach(() => {
    for (const cli of running.splice(0)) {
      if (cli.child.exitCode === null && cli.child.signalCode === null) {
        cli.child.kill('SIGKILL');
      }
    }
  });

  afterAll(async () => {
    await deleteQueueKeys(TEST_REDIS_URL, prefix);
  });

  it(
    'stops promptly on SIGTERM inside a never-ending tag list, says where, exits 143, and the next backfill resumes',
    async () => {
      hostile.behave({ repositories: ['a/first', 'b/endless'], catalog: 'end', tags: (r) => (r === 'b/endless' ? 'new-cursor' : 'end') });
      const cli = start();
      await eventually(() => Promise.resolve((hostile.counts.tags.get('b/endless') ?? 0) >= 20 ? true : undefined), 'the backfill deep in the endless tag list', 15_000);
      const sent = performance.now();
      cli.child.kill('SIGTERM');
      const exit = await within(cli.exited, 5_000, 'signet backfill exiting after SIGTERM');
      expect(performance.now() - sent).toBeLessThan(5_000);
      expect(exit).toEqual({ code: 143, signal: null });
      expect(cli.output.stderr).toMatch(/backfill: SIGTERM: stopping/);
      expect(cli.output.stdout).toMatch(/^interrupted after 2 repositories and 1 tags of /m);
      expect(cli.output.stdout).toContain(`stopped by SIGTERM in b/endless; the next backfill of ${hostile.host} resumes after a/first`);
      expect(await cursor()).toBe('a/first');

      hostile.behave({ repositories: ['a/first', 'b/endless'], catalog: 'end', tags: () => 'end' });
      const next = await runSignetCli(['backfill', hostile.host], env());
      expect(next.code).toBe(0);
      expect(next.stdout).toMatch(/^crawled 1 repositories and 1 tags of .*, resumed after a\/first: 0 queued/m);
      expect(hostile.catalogPaths.at(-1)).toContain('last=a%2Ffirst');
      expect(await cursor()).toBeUndefined();
    },
    TIMEOUT + 10_000,
  );

  it(
    'reports the bound a never-ending tag list reached and exits 3',
    async () => {
      hostile.behave({ repositories: ['a/endless', 'b/fine'], catalog: 'end', tags: (r) => (r === 'a/endless' ? 'new-cursor' : 'end') });
      const cli = start({ SIGNET_CRAWL_MAX_LIST_PAGES: '5' });
      const exit = await within(cli.exited, 15_000, 'signet backfill ending at the bound');
      expect(exit).toEqual({ code: 3, signal: null });
      expect(cli.output.stdout).toMatch(/^crawled 2 repositories and 51 tags of /m);
      expect(cli.output.stdout).toContain('1 crawl bound reached:\n  the tags of a/endless: cut at SIGNET_CRAWL_MAX_LIST_PAGES pages (after 5 pages, 50 entries)\n');
      expect(hostile.counts.tags.get('a/endless')).toBe(5);
      expect(await cursor()).toBeUndefined();
    },
    TIMEOUT,
  );
});
