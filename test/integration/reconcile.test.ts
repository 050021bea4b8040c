// Reconciliation against a real docker-registry (CNCF distribution 2.8): the crawl with Link
// pagination and resume, the scheduled pass healing notifications that never arrived, and the
// `signet backfill` CLI on a registry holding a few hundred images and signatures.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { INDEX_QUEUE, type IndexManifestData } from '../../services/common/jobs/index-manifest.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createRegistryClient } from '../../services/core/oci/client.ts';
import { crawlRegistry } from '../../services/core/crawl.ts';
import { runBackfill, runSignetCli } from '../helpers/cli.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_REDIS_URL, type TestSignet } from '../helpers/signet.ts';
import { createTestSigstore, generateTestKey, simpleSigningPayload, type TestKey, type TestSigstore } from '../signer/signer.ts';

const log = createLogger({ logLevel: 'silent' });
let tmp: string;
let sigstore: TestSigstore;
let key: TestKey;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'signet-reconcile-'));
  sigstore = await createTestSigstore();
  key = generateTestKey();
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function sign(registry: RunningRegistry, repo: string, digest: Digest): Promise<Digest> {
  const layer = await sigstore.signWithKey(simpleSigningPayload(`${registry.host}/${repo}`, digest), key);
  return pushCosignSignatures(registry.url, repo, digest, [layer]);
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) {
    out.push(...(await Promise.all(items.slice(i, i + n).map((item, j) => fn(item, i + j)))));
  }
  return out;
}

function manifestsOf(db: TestDb) {
  return db.db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select(['r.name', 'm.digest', 'm.signature_count', 'm.deleted_at'])
    .execute();
}

describe('the crawl', () => {
  let registry: RunningRegistry;
  let db: TestDb;

  beforeAll(async () => {
    [registry, db] = await Promise.all([startRegistry(), createTestDb()]);
  });

  afterAll(async () => {
    await registry?.stop();
    await db?.drop();
  });

  it('follows Link pagination through catalog and tags, queues each digest once and resumes after an interruption', async () => {
    const images: Record<string, Digest> = {};
    for (const repo of ['a/one', 'b/two', 'c/three']) {
      for (const tag of ['t1', 't2', 't3']) {
        images[`${repo}:${tag}`] = (await pushRandomImage(registry.url, repo, tag)).digest;
      }
    }
    // The same digest under a second tag is queued once.
    const again = await pushRandomImage(registry.url, 'a/one', 'latest');
    await fetch(`${registry.url}/v2/a/one/manifests/also`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: new Uint8Array(again.bytes),
    });
    const client = createRegistryClient({ insecureHosts: [registry.host], timeoutMs: 5_000, retries: 0, maxManifestBytes: 1 << 20, log });
    const queued: IndexManifestData[] = [];
    const deps = { db: db.db, registry: client, log, enqueueIndex: (d: IndexManifestData) => Promise.resolve(String(queued.push(d))) };

    // Stop after the first repository, as an interrupted backfill would.
    const stop = new AbortController();
    const first = await crawlRegistry(deps, registry.host, null, {
      pageSize: 2,
      signal: stop.signal,
      onProgress: (p) => p.repository === 'a/one' && p.checked === 5 && stop.abort(),
    });
    expect(first).toMatchObject({ complete: false, repositories: 1, tags: 5, queued: 4 });
    expect((await db.db.selectFrom('crawl_cursors').selectAll().execute())[0]).toMatchObject({ registry: registry.host, last_repository: 'a/one' });

    const rest = await crawlRegistry(deps, registry.host, null, { pageSize: 2 });
    expect(rest).toMatchObject({ complete: true, resumedAfter: 'a/one', repositories: 2, tags: 6, queued: 6 });
    expect(await db.db.selectFrom('crawl_cursors').selectAll().execute()).toEqual([]);
    expect(queued.map((q) => `${q.repository}@${q.digest}`).sort()).toEqual(
      [...Object.entries(images).map(([ref, d]) => `${ref.split(':')[0]}@${d}`), `a/one@${again.digest}`].sort(),
    );
    // Every tag is in the ledger's tag history.
    const tags = await db.db.selectFrom('tags').select(['name', 'digest']).execute();
    expect(tags).toHaveLength(11);
    expect(await db.db.selectFrom('tag_history').selectAll().execute()).toHaveLength(11);
  });
  it('finds an untagged image through its referrers fallback tag (sha256-<hex>) without indexing that index as an image', async () => {
    const image = await pushRandomImage(registry.url, 'd/referred', null);
    const fallback = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
    await fetch(`${registry.url}/v2/d/referred/manifests/${image.digest.replace(':', '-')}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: JSON.stringify(fallback),
    });
    const client = createRegistryClient({ insecureHosts: [registry.host], timeoutMs: 5_000, retries: 0, maxManifestBytes: 1 << 20, log });
    const queued: IndexManifestData[] = [];
    const deps = { db: db.db, registry: client, log, enqueueIndex: (d: IndexManifestData) => Promise.resolve(String(queued.push(d))) };
    const result = await crawlRegistry(deps, registry.host, 'd/referred');
    expect(result).toMatchObject({ complete: true, tags: 1, queued: 1, tagsRecorded: 0 });
    expect(queued).toEqual([expect.objectContaining({ digest: image.digest, trigger: { kind: 'push' } })]);
  });
});

describe('the scheduled reconciliation when notifications are lost', () => {
  let registry: RunningRegistry;
  let db: TestDb;
  let signet: TestSignet;

  beforeAll(async () => {
    const [port, deadPort] = await Promise.all([freePort(), freePort()]);
    db = await createTestDb();
    await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
    await writeFile(join(tmp, 'registries.yaml'), `registries:\n  - host: 127.0.0.1:${port}\n    insecure: true\n`);
    signet = await startTestSignet({
      DATABASE_URL: db.url,
      SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
      SIGNET_REGISTRIES_FILE: join(tmp, 'registries.yaml'),
      SIGNET_RECONCILE_INTERVAL: '1s',
    });
    // The registry notifies an endpoint that is down: every notification is lost to Signet.
    registry = await startRegistry({ port, notifications: { url: `http://127.0.0.1:${deadPort}/webhooks/distribution` } });
  });

  afterAll(async () => {
    await registry?.stop();
    await signet?.stop();
    await db?.drop();
  });

  it('finds every missed digest, the signatures pushed later and the tag moves', async () => {
    const a = await pushRandomImage(registry.url, 'team/app', 'v1');
    const b = await pushRandomImage(registry.url, 'team/app', null);
    const signedB = await sign(registry, 'team/app', b.digest); // b is untagged: found through its .sig tag
    const c = await pushRandomImage(registry.url, 'other/svc', 'latest');
    const indexed = await eventually(async () => {
      const rows = await manifestsOf(db);
      return rows.length === 3 && rows.every((r) => r.digest !== b.digest || r.signature_count === 1) ? rows : undefined;
    }, 'the three images indexed by the scheduled crawl', 30_000);
    expect(indexed.map((r) => r.digest).sort()).toEqual([a.digest, b.digest, c.digest].sort());

    // A signature for an image already in the ledger, and a tag moved, both unannounced.
    await sign(registry, 'team/app', a.digest);
    const a2 = await pushRandomImage(registry.url, 'team/app', 'v1');
    await eventually(async () => {
      const rows = await manifestsOf(db);
      return rows.length === 4 && rows.find((r) => r.digest === a.digest)?.signature_count === 1 ? rows : undefined;
    }, 'the later signature and the moved tag healed', 30_000);
    const history = await db.db.selectFrom('tag_history').select(['name', 'digest', 'previous_digest']).where('name', '=', 'v1').orderBy('id').execute();
    expect(history).toEqual([
      { name: 'v1', digest: a.digest, previous_digest: null },
      { name: 'v1', digest: a2.digest, previous_digest: a.digest },
    ]);
    const sigs = await db.db.selectFrom('signatures').select('source_digest').execute();
    expect(sigs.map((s) => s.source_digest)).toContain(signedB);
  });
});

describe('signet backfill on a registry holding a few hundred images and signatures', () => {
  const IMAGES = 200;
  const SIGNED = 100;
  const REPOSITORIES = 8;
  let registry: RunningRegistry;
  let db: TestDb;
  let signet: TestSignet;
  let queue: Queue;
  let redis: Redis;

  beforeAll(async () => {
    [registry, db] = await Promise.all([startRegistry(), createTestDb()]);
    signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_INSECURE_REGISTRIES: registry.host, SIGNET_RECONCILE_INTERVAL: '0' });
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    queue = new Queue(INDEX_QUEUE, { connection: redis, prefix: signet.config.redis.queuePrefix });
  });

  afterAll(async () => {
    await queue?.close();
    redis?.disconnect();
    await registry?.stop();
    await signet?.stop();
    await db?.drop();
  });

  const cli = (...args: string[]) => runBackfill(signet, registry.host, ...args);

  it('indexes every image and signature exactly once, and a second run queues nothing', async () => {
    // Eight repositories pushed in parallel, each one image at a time (distribution 2.8 can refuse
    // concurrent uploads of the same blob, here cosign's empty config, into one repository).
    const pushed = (
      await pool(Array.from({ length: REPOSITORIES }, (_, r) => r), REPOSITORIES, async (r) => {
        const digests: Digest[] = [];
        for (let i = r; i < IMAGES; i += REPOSITORIES) {
          const image = await pushRandomImage(registry.url, `team-${r}/app`, `v${i}`);
          if (i < SIGNED) {
            await sign(registry, `team-${r}/app`, image.digest);
          }
          digests.push(image.digest);
        }
        return digests;
      })
    ).flat();

    const { stdout, stderr } = await cli(registry.host, '--wait', '--page-size', '50');
    expect(stdout).toMatch(new RegExp(`crawled ${REPOSITORIES} repositories and ${IMAGES + SIGNED} tags of .*: ${IMAGES} queued`));
    expect(stdout).toMatch(new RegExp(`indexed ${IMAGES} of ${IMAGES} queued images in .* s \\(.* images/s\\)`));
    expect(stderr).not.toMatch(/tags checked/); // progress is drawn on a terminal only, and this is a pipe
    // The throughput line, for the closing note (vitest shows it with --reporter=verbose).
    console.info(stdout.trim());

    const rows = await manifestsOf(db);
    expect(rows).toHaveLength(IMAGES);
    expect(new Set(rows.map((r) => r.digest))).toEqual(new Set(pushed));
    expect(rows.filter((r) => r.signature_count === 1)).toHaveLength(SIGNED);
    expect(await db.db.selectFrom('signatures').select('id').execute()).toHaveLength(SIGNED);
    expect(await queue.getJobCounts('completed', 'failed')).toEqual({ completed: IMAGES, failed: 0 });

    const second = await cli(`${registry.host}`);
    expect(second.stdout).toMatch(/: 0 queued, 0 tags recorded/);
    const one = await cli(`${registry.host}/team-1/app`);
    expect(one.stdout).toMatch(/crawled 1 repositories and 38 tags .*: 0 queued/);
    expect(await queue.getJobCounts('completed', 'waiting', 'failed')).toMatchObject({ completed: IMAGES, waiting: 0, failed: 0 });
  });

  it('reports in one JSON object with --json, and exits 4 for a registry it may not contact', async () => {
    const { stdout } = await cli(registry.host, '--json');
    expect(JSON.parse(stdout)).toMatchObject({ registry: registry.host, repository: null, repositories: REPOSITORIES, queued: 0, tagsRecorded: 0, stopped: null, limitsReached: 0, jobs: 0 });
    const env = { DATABASE_URL: signet.config.database.url, REDIS_URL: TEST_REDIS_URL, SIGNET_QUEUE_PREFIX: signet.config.redis.queuePrefix, SIGNET_INSECURE_REGISTRIES: registry.host };
    const refused = await runSignetCli(['backfill', 'registry.not-allowed.example'], env);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/^signet backfill: .*registry\.not-allowed\.example/m);
  });
});
