// Fault injection end to end. A burst of signed images is pushed through a real docker-registry
// while, in turn: the worker process is killed with SIGKILL mid-burst and restarted, Redis (a
// server of this test's own, with AOF) is killed and restarted, Postgres is cut off (a TCP proxy in
// front of the real one) and restored, and the registry answers the worker with 503s, 429s and
// hangs (an HTTP proxy in front of it). Afterwards every pushed image is in the ledger exactly
// once, its signature verified and its decision allowed — nothing acknowledged was lost — and two
// API replicas give the same answers. Signet's webhook endpoint is also down for a stretch (the
// registry's retries and the reconciliation crawl cover it), and an API replica with Redis down
// answers from memory, marked stale.
//
// FAULTS_IMAGES sets the burst (default 40; the soak run uses thousands: `npm run soak`).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import type { CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, PG_SERVER, type TestDb } from '../helpers/db.ts';
import { feedCounters } from '../helpers/decisions.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { freePort } from '../helpers/net.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { createTestSigstore, generateTestKey, keylessAndKeyPolicy, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const IMAGES = Number(process.env.FAULTS_IMAGES ?? 40);
const MAIN = fileURLToPath(new URL('../../services/main.ts', import.meta.url));
const SIGNER = { email: 'faults@example.com', issuer: 'https://accounts.example.com' };

let db: TestDb;
let tmp: string;
let sigstore: TestSigstore;
let registry: RunningRegistry;
let faults: FaultProxy;
let pg: TcpProxy;
let redisPort: number;
let redis: ChildProcess | null = null;
let signet: TestSignet;
/** A second API replica: both must give the same answers. */
let replica: TestSignet;
/** Between the registry and Signet's webhook endpoint, to take the endpoint down for a stretch. */
let notify: TcpProxy;
let worker: ChildProcess | null = null;
let env: Record<string, string>;
const key = generateTestKey();

async function startRedis(): Promise<ChildProcess> {
  // AOF with fsync on every write: a restart keeps every job Redis acknowledged.
  const proc = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', tmp, '--maxmemory-policy', 'noeviction'],
    { stdio: 'ignore' },
  );
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('spawn', () => resolve());
  });
  return proc;
}

async function stop(proc: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (proc === null || proc.exitCode !== null) {
    return;
  }
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await exited;
}

const workerLog: string[] = [];
let crashes = 0;
let finished = false;

/** The worker as Kubernetes would run it: a crash (not a kill by this test) is restarted. */
function startWorker(): ChildProcess {
  const proc = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', ...env, SIGNET_ROLES: 'worker', PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    stream?.on('data', (chunk: Buffer) => workerLog.push(...chunk.toString().split('\n').filter((l) => l.length > 0)));
  }
  proc.on('exit', (code, signal) => {
    workerLog.push(`worker exited: code ${code} signal ${signal}`);
    if (signal !== 'SIGKILL' && !finished) {
      crashes += 1;
      setTimeout(() => {
        if (!finished) {
          worker = startWorker();
        }
      }, 500);
    }
  });
  return proc;
}

beforeAll(async () => {
  [db, sigstore] = await Promise.all([createTestDb(), createTestSigstore()]);
  tmp = await mkdtemp(join(tmpdir(), 'signet-faults-'));
  redisPort = await freePort();
  redis = await startRedis();
  const pgUrl = new URL(PG_SERVER);
  pg = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  faults = await startFaultProxy(`http://${host}`);
  await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
  await writeFile(
    join(tmp, 'policy.yaml'),
    keylessAndKeyPolicy(host, SIGNER, key),
  );
  // The worker reaches the registry through the fault proxy; the crawl heals lost notifications.
  await writeFile(join(tmp, 'registries.yaml'), `registries:\n  - host: "${host}"\n    endpoint: "${faults.url}"\n    insecure: true\n`);
  const dbUrl = new URL(db.url);
  dbUrl.port = String(pg.port);
  env = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN,
    SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
    SIGNET_TUF_REFRESH: '0',
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
    SIGNET_REGISTRIES_FILE: join(tmp, 'registries.yaml'),
    SIGNET_RECONCILE_INTERVAL: '5s',
    SIGNET_REGISTRY_TIMEOUT_MS: '1500',
    SIGNET_REGISTRY_RETRIES: '1',
    SIGNET_WORKER_LOCK_MS: '3000',
    SIGNET_QUEUE_PREFIX: `signet-faults-${process.pid}`,
    LOG_LEVEL: 'warn',
  };
  signet = await eventually(() => startTestSignet({ ...env, SIGNET_ROLES: 'ingest,api', LOG_LEVEL: 'silent' }), 'signet connected to the test redis');
  worker = startWorker();
  replica = await startTestSignet({ ...env, SIGNET_ROLES: 'api', LOG_LEVEL: 'silent' });
  const signetPort = new URL(signet.url).port;
  notify = await startTcpProxy('127.0.0.1', Number(signetPort));
  registry = await startRegistry({ port, notifications: { url: `http://127.0.0.1:${notify.port}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });
}, 60_000);

afterAll(async () => {
  finished = true;
  await stop(worker, 'SIGKILL');
  await registry?.stop();
  await replica?.stop();
  await signet?.stop();
  await notify?.close();
  await faults?.close();
  await pg?.close();
  await stop(redis, 'SIGKILL');
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

describe('faults', () => {
  it(`${IMAGES} signed images survive a killed worker, a Redis restart, a Postgres outage and a failing registry`, async () => {
    // Untimed: images pushed and signed (half keyless, half with a key and a Rekor entry).
    const prepared: { repo: string; digest: Digest; layer: CosignLayer }[] = [];
    for (let i = 0; i < IMAGES; i++) {
      const keyless = i % 2 === 0;
      const repo = `${keyless ? 'keyless' : 'keyed'}/app${i % 4}`;
      const image = await pushRandomImage(registry.url, repo, `v${i}`);
      const payload = simpleSigningPayload(`${registry.host}/${repo}`, image.digest);
      prepared.push({ repo, digest: image.digest, layer: keyless ? await sigstore.signKeyless(payload, SIGNER) : await sigstore.signWithKey(payload, key, { tlog: true }) });
    }

    // The registry, as the worker sees it: 1 in 8 requests 503, 1 in 16 429, 1 in 25 hangs.
    faults.setDecider((_req, n) => (n % 25 === 7 ? 'hang' : n % 16 === 3 ? '429' : n % 8 === 5 ? '503' : 'pass'));

    const burstStarted = Date.now();
    const third = Math.floor(IMAGES / 3);
    for (const [i, p] of prepared.entries()) {
      await pushCosignSignatures(registry.url, p.repo, p.digest, [p.layer]);
      if (i === third) {
        await stop(worker, 'SIGKILL');
        await sleep(500);
        worker = startWorker();
      }
      if (i === 2 * third) {
        // One image decided before Redis goes (on a loaded machine the worker may still be behind).
        const decided = await eventually(
          () =>
            db.db
              .selectFrom('decisions as d')
              .innerJoin('manifests as m', 'm.id', 'd.manifest_id')
              .innerJoin('repositories as r', 'r.id', 'm.repository_id')
              .select(['m.digest', 'r.name'])
              .where('d.allowed', '=', true)
              .limit(1)
              .executeTakeFirst(),
          'an allowed image before Redis is killed',
          60_000,
        );
        const ask = async () => {
          const res = await replica.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`${registry.host}/${decided.name}@${decided.digest}`)}` });
          return res.json<{ allowed: boolean; stale: boolean }>();
        };
        // The replica knows it allowed too: the ledger's commit comes before the feed's message, and
        // a replica holding the image's earlier denial would keep it through the outage.
        await eventually(async () => ((await ask()).allowed ? true : undefined), 'the replica answering that image allowed before Redis is killed', 60_000);
        await stop(redis, 'SIGKILL');
        // With Redis down, an API replica answers what it knows from memory, marked stale.
        await eventually(async () => {
          const answer = await ask();
          return answer.allowed && answer.stale ? true : undefined;
        }, 'a stale answer from memory while Redis is down', 10_000);
        await sleep(1_000);
        redis = await startRedis();
      }
      if (i === Math.floor(IMAGES / 4)) {
        // Signet's webhook endpoint down for a stretch: the registry retries, the crawl heals.
        notify.cut();
        setTimeout(() => notify.restore(), 3_000);
      }
      if (i === Math.floor(IMAGES / 2)) {
        pg.cut();
        await sleep(2_000);
        pg.restore();
      }
    }

    // Every image ends allowed, whatever was lost on the way (the crawl heals lost notifications).
    const digests = prepared.map((p) => p.digest);
    const allowed = async () =>
      db.db
        .selectFrom('decisions as d')
        .innerJoin('manifests as m', 'm.id', 'd.manifest_id')
        .select('m.digest')
        .where('m.digest', 'in', digests)
        .where('d.allowed', '=', true)
        .execute();
    try {
      await eventually(async () => ((await allowed()).length === IMAGES ? true : undefined), `all ${IMAGES} images allowed`, 60_000 + IMAGES * 150);
    } catch (err) {
      // Say where the missing ones are stuck.
      const done = new Set((await allowed()).map((r) => r.digest));
      const missing = digests.filter((d) => !done.has(d));
      const rows = await db.db.selectFrom('manifests').select(['digest', 'status', 'status_reason', 'signature_count']).where('digest', 'in', missing).execute();
      const failed = await signet.queue!.getFailed(0, 10);
      throw new Error(
        `${(err as Error).message}\nmissing ${missing.length}: ${JSON.stringify(rows.slice(0, 5))}\njobs ${JSON.stringify(await signet.queue!.getJobCounts())}\nfailed: ${failed.map((j) => `${j.id}: ${j.failedReason}`).join(' | ')}\ninjected ${JSON.stringify(faults.injected)}, worker crashes ${crashes}\nworker log (last 15): ${workerLog.slice(-15).join('\n')}`,
        { cause: err },
      );
    }
    const drainedMs = Date.now() - burstStarted;
    faults.setDecider(() => 'pass');
    // No dependency outage made the worker crash (it waits them out).
    expect(crashes, workerLog.filter((l) => l.includes('"level":60') || l.startsWith('worker exited')).join('\n')).toBe(0);

    // Exactly once: one manifest and one signature per image, the signature verified.
    const manifests = await db.db.selectFrom('manifests').select(['id', 'digest', 'status']).where('digest', 'in', digests).execute();
    expect(manifests).toHaveLength(IMAGES);
    expect(manifests.every((m) => m.status === 'verified')).toBe(true);
    const signatures = await db.db
      .selectFrom('signatures')
      .select(['manifest_id', 'outcome'])
      .where(
        'manifest_id',
        'in',
        manifests.map((m) => m.id),
      )
      .execute();
    expect(signatures).toHaveLength(IMAGES);
    expect(signatures.every((s) => s.outcome === 'verified')).toBe(true);
    // Every kind of fault really happened.
    expect(faults.injected['503']).toBeGreaterThan(0);
    expect(faults.injected['429']).toBeGreaterThan(0);
    expect(faults.injected.hang).toBeGreaterThan(0);
    if (process.env.FAULTS_IMAGES !== undefined) {
      // The soak run's figures (npm run soak).
      console.log(
        JSON.stringify({ images: IMAGES, faultsInjected: { ...faults.injected, workerKilled: 1, redisRestarted: 1, postgresCut: 1, webhookEndpointDown: 1 }, lost: IMAGES - (await allowed()).length, duplicates: manifests.length + signatures.length - 2 * IMAGES, drainedSeconds: drainedMs / 1000 }),
      );
    }
    // Both API replicas agree on every image, from memory, and are fresh again. The feed follows
    // the ledger's commit by a moment (the last decision may be in Postgres and not yet heard), but
    // an event lost on the way would leave a replica with the image's earlier answer for good.
    type Answer = { allowed: boolean; reason: string; stale: boolean };
    for (const p of prepared) {
      const url = `/v1/decisions?image=${encodeURIComponent(`${registry.host}/${p.repo}@${p.digest}`)}`;
      const answers = async () => (await Promise.all([signet.app.inject({ method: 'GET', url }), replica.app.inject({ method: 'GET', url })])).map((r) => r.json<Answer>());
      let [a, b] = await answers();
      if (!(a!.allowed && b!.allowed && !a!.stale && !b!.stale)) {
        [a, b] = await eventually(
          async () => {
            const both = await answers();
            return both.every((x) => x.allowed && !x.stale) ? both : undefined;
          },
          `both replicas allowing ${p.repo}@${p.digest}`,
          15_000,
        ).catch(() => answers());
      }
      const context = `feeds ${JSON.stringify([await feedCounters(signet), await feedCounters(replica)])}; worker: ${workerLog.filter((l) => /publish|feed/i.test(l)).slice(-5).join('\n')}`;
      expect(a, context).toMatchObject({ allowed: true, reason: 'verified', stale: false });
      expect(b, context).toEqual(a);
    }
  }, 180_000 + IMAGES * 500);
});
