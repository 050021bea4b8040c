// `npm run bench:scale`: Signet on a large ledger (10M signatures by default), as separate processes
// the way it is deployed, and what each costs — the input of the capacity model in docs/scaling.md.
//
// 1. Seed: scripts/seed-ledger.ts generates the ledger inside Postgres (generate_series, one bulk
//    transaction), decided under this benchmark's policy; a ledger already seeded at this size is reused.
// 2. API replicas (`services/main.ts`, SIGNET_ROLES=api), with the full decision table and with
//    the bounded one (SIGNET_DECISION_TABLE_MAX=--bounded), each started --reps times: time from
//    spawn to /readyz (given up after --ready-timeout seconds: the run has half an hour in all),
//    resident memory at ready and at its peak, then --lookups sequential
//    `GET /v1/decisions` of the images decided longest ago (for the bounded table: misses, answered
//    from Postgres and kept) and the same again (hits); CPU per lookup of the replica and of
//    Postgres. GraphQL: bench-graphql's two queries at --graphql-rate against the bounded replica.
// 3. Re-decision: a worker started on the seeded ledger (recorded as decided in full under the
//    benchmark's policy): under that policy (a restart: nothing to decide), after an edit touching
//    1% of the images, and after one touching all of them; timed from the pass's start until API
//    replicas can switch (the version complete) and until the worker says it is done (untouched
//    decisions carried over), or for --redecide-budget seconds and extrapolated from its progress.
// 4. Ingest: a fresh ledger, a local docker-registry notifying an ingest+api process, and 1, 2 and
//    4 worker processes (--workers); per run, twice --ingest-images images pushed and signed
//    (untimed), then their signatures pushed by --concurrency pushers as fast as the registry takes
//    them: once with Signet's workers held (the registry's rate) and then released on that backlog
//    (Signet's rate to `allowed`), once with Signet indexing as they come (latency). See
//    lib/bench-scale-ingest.ts.
//
// Redis is a server of this run's own (its counters are this run's). Figures are medians over
// repetitions with min–max; the machine's load average is sampled throughout. Writes
// BENCHMARKS.scale.md (not with --dry-run) and prints the JSON.
//
//   node scripts/bench-scale.ts [--signatures 10000000] [--database postgres://…/signet_bench_scale]
//        [--bounded 100000] [--reps 3] [--full-reps N] [--lookups 2000] [--graphql-seconds 5]
//        [--graphql-rate 100] [--redecide-budget 120] [--ready-timeout 300] [--ingest-images 240] [--workers 1,2,4]
//        [--concurrency 8] [--only table,redecide,ingest] [--dry-run] [--drop]
//
// A measurement, not a test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { createDb } from '../services/common/db/client.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { Redis } from 'ioredis';
import * as decisions from '../services/common/db/queries/decisions.ts';
import { parseDigest } from '../services/common/domain/digest.ts';
import { ledgerStream, publishEvents, type LedgerEvent } from '../services/common/events.ts';
import { parseFeedCounters } from '../test/helpers/decisions.ts';
import { freePort } from '../test/helpers/net.ts';
import { startTcpProxy } from '../test/helpers/tcp-proxy.ts';
import { startRedisServer } from '../test/helpers/redis-servers.ts';
import { percentile, runLoad, spread, type Load, type Spread } from './lib/bench.ts';
import { checkGraphql, graphqlBodies } from './lib/graphql-queries.ts';
import { runIngest, type IngestRun } from './lib/bench-scale-ingest.ts';
import { renderScaleReport, type LookupPass, type OutageRun, type RedecideRun, type ReplicaRun, type ReplicaSummary, type ScaleResult } from './lib/bench-scale-report.ts';
import { costOf, cpuWindow, memoryMiB, PG_COUNTERS_SETTLE_MS, pgObserver } from './lib/resources.ts';

const { values } = parseArgs({
  options: {
    signatures: { type: 'string', default: '10000000' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_bench_scale' },
    bounded: { type: 'string', default: '100000' },
    reps: { type: 'string', default: '3' },
    'full-reps': { type: 'string' },
    lookups: { type: 'string', default: '2000' },
    'graphql-seconds': { type: 'string', default: '5' },
    'graphql-rate': { type: 'string', default: '100' },
    'redecide-budget': { type: 'string', default: '120' },
    'ready-timeout': { type: 'string', default: '300' },
    'outage-seconds': { type: 'string', default: '30' },
    // Per repetition and measurement; fewer make the registry's window too short to time (60: ~0.6 s).
    'ingest-images': { type: 'string', default: '240' },
    workers: { type: 'string', default: '1,2,4' },
    concurrency: { type: 'string', default: '8' },
    only: { type: 'string', default: 'table,redecide,ingest' },
    'dry-run': { type: 'boolean', default: false },
    drop: { type: 'boolean', default: false },
    // Internal: one ingest configuration in a process of its own (see lib/bench-scale-ingest.ts).
    child: { type: 'string' },
    redis: { type: 'string' },
    costs: { type: 'boolean', default: false },
  },
});

const num = (name: keyof typeof values) => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`--${name} must be a number, got ${String(values[name])}`);
  }
  return n;
};

if (values.child !== undefined) {
  // One worker count's ingest runs; the parent reads the JSON.
  const out = await runIngest({ workers: Number(values.child), images: num('ingest-images'), reps: num('reps'), concurrency: num('concurrency'), redisUrl: values.redis!, costs: values.costs });
  console.log(JSON.stringify(out));
  process.exit(0);
}

const S = num('signatures');
const reps = Math.max(1, num('reps'));
// A full table at millions of entries takes minutes to load: once by default above 2M signatures.
const fullReps = values['full-reps'] === undefined ? (S > 2_000_000 ? 1 : reps) : Math.max(1, num('full-reps'));
const phases = new Set(values.only.split(','));
for (const p of phases) {
  if (!['table', 'redecide', 'ingest'].includes(p)) {
    throw new Error(`--only takes table, redecide and ingest; got ${p}`);
  }
}
const run = promisify(execFile);
const script = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const MAIN = fileURLToPath(new URL('../services/main.ts', import.meta.url));
const dbUrl = new URL(values.database);
const dbName = dbUrl.pathname.slice(1);
const pgServer = `${dbUrl.protocol}//${dbUrl.username}${dbUrl.password === '' ? '' : `:${dbUrl.password}`}@${dbUrl.host}`;
const started = Date.now();
const log = (line: string) => process.stderr.write(`[bench:scale ${Math.round((Date.now() - started) / 1000)} s] ${line}\n`);

// The machine's load, sampled throughout and labelled with the phase running.
let phase = 'setup';
const load: { phase: string; load1: number }[] = [];
const loadSampler = setInterval(() => load.push({ phase, load1: loadavg()[0]! }), 5_000);
const loadOf = (p?: string) => {
  const xs = load.filter((l) => p === undefined || l.phase === p).map((l) => l.load1);
  return xs.length === 0 ? null : spread(xs, 1);
};

// The policy the ledger is decided under: GitHub Actions release workflows for ghcr.io, the
// seeded ledger's keyless identities of that shape. Images of the other registries are denied (not covered).
const POLICY = `allow_with_verification:
  "ghcr.io":
    "*/*":
      certificate-identity-regexp: '^https://github\\.com/org[0-9]+/repo[0-9]+/\\.github/workflows/release\\.yml@refs/heads/main$'
      certificate-oidc-issuer: https://token.actions.githubusercontent.com
`;
const policyVersion = parsePolicy(POLICY).version;
const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-scale-'));
const policyPath = join(tmp, 'policy.yaml');
await writeFile(policyPath, POLICY);
const redis = await startRedisServer();

// ---- 1. The ledger ----
phase = 'seed';
log(`seeding ${S} signatures into ${dbName}`);
const seedStarted = performance.now();
const seeded = await new Promise<Record<string, unknown>>((resolve, reject) => {
  const child = spawn(
    process.execPath,
    [script('seed-ledger.ts'), '--database', values.database, '--signatures', String(S), '--repositories', String(Math.max(1, Math.floor(S / 10))), '--identities', String(Math.max(1, Math.floor(S / 100))), '--policy', policyPath],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>) : reject(new Error(`seed-ledger exited with ${code}`))));
});
const seedSeconds = Math.round((performance.now() - seedStarted) / 1000);
const db = createDb(values.database, createLogger({ logLevel: 'silent' }), { statementTimeoutMs: 30 * 60_000 });
const ledger = (
  await sql<Record<string, string>>`
    SELECT (SELECT count(*) FROM signatures WHERE kind = 'signature') AS signatures, (SELECT count(*) FROM manifests) AS images,
           (SELECT count(*) FROM decisions WHERE policy_version = ${policyVersion}) AS decisions, (SELECT count(*) FROM tags) AS tags,
           (SELECT count(*) FROM repositories) AS repositories, (SELECT count(*) FROM identities) AS identities,
           pg_database_size(current_database()) AS bytes`.execute(db)
).rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])))[0]!;
log(`ledger: ${JSON.stringify(ledger)}`);

// ---- Signet processes ----

/** A Signet process of this run: `services/main.ts` with the given roles, its JSON log read line by line. */
interface SignetProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  /** performance.now() at spawn. */
  readonly spawnedAt: number;
  /** Resolves to ms from spawn when /readyz first answers 200, or null when it did not within `timeoutMs`. */
  ready(timeoutMs: number): Promise<number | null>;
  /** Resolves to the first log line with this message (and the ms from spawn it came at), or null after `timeoutMs`. */
  logged(msg: string, timeoutMs: number): Promise<{ line: Record<string, unknown>; atMs: number } | null>;
  /** The last log line with this message so far, if any. */
  lastLogged(msg: string): { line: Record<string, unknown>; atMs: number } | null;
  stop(): Promise<void>;
}

async function spawnSignet(env: Record<string, string>): Promise<SignetProcess> {
  const port = await freePort();
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), REDIS_URL: redis.url, SIGNET_TUF_REFRESH: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const seen: { line: Record<string, unknown>; atMs: number }[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof line.level === 'number' && line.level >= 40) {
      process.stderr.write(`[signet ${child.pid}] ${text.slice(0, 400)}\n`);
    }
    if (line.msg !== 'job done') {
      seen.push({ line, atMs: performance.now() - spawnedAt });
      waiters.splice(0).forEach((w) => w());
    }
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    pid: child.pid!,
    url,
    spawnedAt,
    async ready(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (performance.now() < deadline) {
        if (child.exitCode !== null) {
          throw new Error(`signet exited with ${child.exitCode} before it was ready`);
        }
        const ok = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) {
          return performance.now() - spawnedAt;
        }
        await sleep(50);
      }
      return null;
    },
    async logged(msg, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = seen.find((s) => s.line.msg === msg);
        if (found !== undefined) {
          return found;
        }
        const left = deadline - performance.now();
        if (left <= 0 || child.exitCode !== null) {
          return null;
        }
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(Math.min(left, 1_000))]);
      }
    },
    lastLogged(msg) {
      return seen.findLast((x) => x.line.msg === msg) ?? null;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}

const pgWatch = await pgObserver(pgServer, dbName);

const costOfHere = <T>(pids: readonly number[], work: () => Promise<T>, settleMs = 0) => costOf({ pids: () => pids, pg: pgWatch, redisUrl: redis.url, settleMs }, work);

const round = (x: number, d = 3) => Number(x.toFixed(d));
const per = (total: number, n: number, d = 3) => (n === 0 ? NaN : round(total / n, d));

// ---- 2. API replicas ----

/** Sequential `GET /v1/decisions` of each reference on one keep-alive connection; ms per lookup and the answers' reasons. */
async function lookups(url: string, refs: readonly string[]): Promise<{ ms: number[]; answers: Record<string, number> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ms: number[] = [];
  const answers: Record<string, number> = {};
  try {
    for (const ref of refs) {
      const t = performance.now();
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get(`${url}/v1/decisions?image=${encodeURIComponent(ref)}`, { agent }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode} for ${ref}: ${text.slice(0, 200)}`))));
          })
          .on('error', reject);
      });
      ms.push(performance.now() - t);
      const reason = (JSON.parse(body) as { reason: string }).reason;
      answers[reason] = (answers[reason] ?? 0) + 1;
    }
  } finally {
    agent.destroy();
  }
  return { ms, answers };
}

/** One pass of lookups, with the replica's and Postgres's CPU per lookup; Postgres's counters too when `counters` (11 s more). */
async function lookupPass(api: SignetProcess, refs: readonly string[], counters: boolean): Promise<LookupPass> {
  const { result, cpuMs: api_, pgCpuMs, pg: pgc } = await costOfHere([api.pid], () => lookups(api.url, refs), counters ? PG_COUNTERS_SETTLE_MS : 0);
  const sorted = [...result.ms].sort((a, b) => a - b);
  const n = refs.length;
  return {
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    apiCpuMsPerLookup: per(api_, n),
    pgCpuMsPerLookup: per(pgCpuMs, n),
    // The observer's own reading of the counters is one statement, outside this database.
    pgStatementsPerLookup: pgc === null ? NaN : per(pgc.xacts, n),
    pgRowsReadPerLookup: pgc === null ? NaN : per(pgc.rowsRead, n, 1),
    pgBlocksPerLookup: pgc === null ? NaN : per(pgc.blocks, n, 1),
    answers: result.answers,
  };
}

async function replicaRun(table: 'full' | 'bounded', maxEntries: number, refs: readonly string[], graphql: Awaited<ReturnType<typeof graphqlBodies>> | null): Promise<ReplicaRun> {
  const api = await spawnSignet({
    DATABASE_URL: values.database,
    SIGNET_ROLES: 'api',
    SIGNET_POLICY: policyPath,
    SIGNET_QUEUE_PREFIX: `bench-scale-api-${process.pid}`,
    SIGNET_DECISION_TABLE_MAX: String(maxEntries),
  });
  try {
    const readyMs = await api.ready(num('ready-timeout') * 1000);
    const memory = (await memoryMiB(api.pid))!;
    if (readyMs === null) {
      log(`${table} table: not ready within ${num('ready-timeout')} s (RSS ${memory.rss} MiB then): stopped`);
      return { table, maxEntries, readyMs: null, tableLoadMs: null, decisionsLoaded: null, tagsLoaded: null, rssMiB: memory.rss, peakRssMiB: memory.peak, first: null, second: null };
    }
    const loaded = (await api.logged('decision table loaded', 1_000))?.line;
    // Postgres's counters for the misses only: hits never reach it.
    const first = await lookupPass(api, refs, table === 'bounded');
    const second = await lookupPass(api, refs, false);
    let graphqlLoads: Record<string, Load> | undefined;
    if (graphql !== null) {
      await checkGraphql(api.url, graphql);
      const at = (path: string, bodies: string[] | null) =>
        runLoad({ url: `${api.url}${path}`, bodies, connections: 2, seconds: num('graphql-seconds'), warmup: 1, rate: num('graphql-rate'), precise: true });
      graphqlLoads = { '/healthz (yardstick)': await at('/healthz', null) };
      for (const [name, bodies] of Object.entries(graphql)) {
        graphqlLoads[name] = await at('/graphql', bodies);
      }
    }
    const run: ReplicaRun = {
      table,
      maxEntries,
      readyMs: Math.round(readyMs),
      tableLoadMs: typeof loaded?.ms === 'number' ? loaded.ms : null,
      decisionsLoaded: typeof loaded?.decisions === 'number' ? loaded.decisions : null,
      tagsLoaded: typeof loaded?.tags === 'number' ? loaded.tags : null,
      rssMiB: memory.rss,
      peakRssMiB: memory.peak,
      first,
      second,
      ...(graphqlLoads === undefined ? {} : { graphql: graphqlLoads }),
    };
    log(`${table} table: ready in ${run.readyMs} ms, RSS ${run.rssMiB} MiB (peak ${run.peakRssMiB}), first p99 ${first.p99} ms, second p99 ${second.p99} ms`);
    return run;
  } finally {
    await api.stop();
  }
}

// ---- 2b. A Redis outage ----

/** The replica's decision feed counters (`signet_decision_feed_events`). */
const feedEvents = async (url: string) => parseFeedCounters(await (await fetch(`${url}/metrics`)).text());

/**
 * A bounded API replica cut off Redis (a TCP proxy between them drops its connections and refuses
 * new ones) for `--outage-seconds`, while the decisions of `refs` are published to its feed a
 * second's share at a time, as a worker would go on publishing: after Redis is back, does it resume
 * from its last event (and apply what came meanwhile) or reload everything from Postgres?
 */
async function outageRun(refs: readonly string[]): Promise<OutageRun> {
  const target = new URL(redis.url);
  const proxy = await startTcpProxy(target.hostname, Number(target.port));
  const prefix = `bench-scale-outage-${process.pid}`;
  const api = await spawnSignet({
    DATABASE_URL: values.database,
    SIGNET_ROLES: 'api',
    SIGNET_POLICY: policyPath,
    SIGNET_QUEUE_PREFIX: prefix,
    SIGNET_DECISION_TABLE_MAX: String(num('bounded')),
    REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
  });
  const publisher = new Redis(redis.url);
  try {
    if ((await api.ready(num('ready-timeout') * 1000)) === null) {
      throw new Error('the replica for the Redis outage was not ready');
    }
    // What the worker publishes for these images: their stored decisions, as ledger events.
    const events: LedgerEvent[] = [];
    for (const ref of refs) {
      const [, host, repository, digest] = /^([^/]+)\/(.+)@(sha256:[0-9a-f]{64})$/.exec(ref)!;
      const d = await decisions.find(db, policyVersion, host!, repository!, parseDigest(digest!));
      if (d !== null) {
        events.push({ ...d, type: 'decision', verifiedAt: d.verifiedAt.toISOString() });
      }
    }
    const stream = ledgerStream({ queuePrefix: prefix, feedMaxLen: 100_000 });
    const before = await feedEvents(api.url);
    const seconds = num('outage-seconds');
    const share = Math.ceil(events.length / seconds);
    proxy.cut();
    const cutAt = performance.now();
    for (let s = 0; s < seconds; s++) {
      await publishEvents(publisher, stream, events.slice(s * share, (s + 1) * share));
      await sleep(Math.max(0, cutAt + (s + 1) * 1000 - performance.now()));
    }
    proxy.restore();
    const restoredAt = performance.now();
    let after = await feedEvents(api.url);
    while (after.applied < before.applied + events.length && performance.now() - restoredAt < 120_000) {
      await sleep(100);
      after = await feedEvents(api.url);
    }
    const run: OutageRun = {
      outageSeconds: round((restoredAt - cutAt) / 1000, 1),
      published: events.length,
      applied: after.applied - before.applied,
      reloads: after.reload - before.reload,
      resumes: after.resume - before.resume,
      caughtUpMs: after.applied >= before.applied + events.length ? Math.round(performance.now() - restoredAt) : null,
    };
    log(`Redis outage: ${JSON.stringify(run)}`);
    return run;
  } finally {
    publisher.disconnect();
    await api.stop();
    await proxy.close();
  }
}

const replicas: ReplicaRun[] = [];
let outage: OutageRun | null = null;
if (phases.has('table')) {
  phase = 'api replicas';
  // The images decided longest ago: what a bounded table (which loads the most recent) does not hold.
  const refs = (
    await sql<{ ref: string }>`
      SELECT g.host || '/' || r.name || '@' || m.digest AS ref FROM decisions d JOIN manifests m ON m.id = d.manifest_id
      JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
      WHERE d.policy_version = ${policyVersion} ORDER BY d.decided_at, d.manifest_id LIMIT ${num('lookups')}`.execute(db)
  ).rows.map((r) => r.ref);
  const graphql = await graphqlBodies(db);
  for (let rep = 0; rep < reps; rep++) {
    // Alternating which goes first, so a busier moment does not always weigh on the same one.
    const order = rep % 2 === 0 ? (['bounded', 'full'] as const) : (['full', 'bounded'] as const);
    for (const table of order) {
      if (table === 'full' && rep >= fullReps) {
        continue;
      }
      log(`api replica, ${table} table, repetition ${rep + 1}`);
      replicas.push(await replicaRun(table, table === 'full' ? Math.max(1_000, ledger.decisions! + 1) : num('bounded'), refs, table === 'bounded' ? graphql : null));
    }
  }
  log(`api replica, bounded table, Redis cut for ${num('outage-seconds')} s`);
  outage = await outageRun(refs);
}

// ---- 3. Re-decision ----

/**
 * A worker pass to time (core/decider.ts, Decider.redecide): the policy the worker starts under.
 * The seed is recorded as decided in full under POLICY by this Signet version, so starting under
 * POLICY is a restart (the pass decides nothing that still counts), and any other policy an edit
 * of it: the worker carries over what the edit did not touch and decides the rest.
 */
interface Redecision {
  readonly name: string;
  readonly policy: string;
}

const REDECISIONS: readonly Redecision[] = [
  { name: 'worker restart, policy unchanged', policy: POLICY },
  // ghcr.io holds the repositories j with j % 5 = 0, of organisation j % 2000: organisations
  // 100, 105, … 195 are 20 of the 2,000, so 1% of every registry's images, all of them in ghcr.io.
  // The added rule is stricter than `*/*`'s (an alternative that never matches is added).
  {
    name: 'policy edit touching 1% of images (a rule for 20 of 2,000 organisations)',
    policy: `${POLICY}    "org1[0-9][05]/*":
      certificate-identity-regexp: '^(?:https://github\\.com/org[0-9]+/repo[0-9]+/\\.github/workflows/release\\.yml@refs/heads/main|never)$'
      certificate-oidc-issuer: https://token.actions.githubusercontent.com
`,
  },
  { name: 'policy edit touching every image (mode: warn)', policy: `mode: warn\n${POLICY}` },
];

async function redecide(r: Redecision): Promise<RedecideRun> {
  const budgetMs = num('redecide-budget') * 1000;
  const file = join(tmp, `policy-${REDECISIONS.indexOf(r)}.yaml`);
  await writeFile(file, r.policy);
  const cost = await costOfHere(
    [],
    async () => {
      const w = await spawnSignet({ DATABASE_URL: values.database, SIGNET_ROLES: 'worker', SIGNET_POLICY: file, SIGNET_QUEUE_PREFIX: `bench-scale-worker-${process.pid}` });
      const own = cpuWindow(() => [w.pid]);
      await own.start();
      // Start-up (a scan of the signatures for the re-verification, minutes on a large ledger) is
      // waited for, up to an hour; the budget runs from the pass's start.
      const began =
        (await Promise.race([w.logged('re-deciding the ledger', 60 * 60_000), w.logged('deciding images without a decision under the policy in force', 60 * 60_000)])) ?? null;
      const done = began === null ? null : await w.logged('ledger re-decided', budgetMs);
      const progress = done === null ? lastProgress(w) : null;
      const switched = w.lastLogged(SWITCHED);
      const ms = await own.stop();
      if (done === null) {
        log('stopping the worker mid-way: its "re-deciding the ledger failed" error is expected');
      }
      await w.stop();
      return { began, done, progress, switched, workerCpuMs: ms };
    },
    PG_COUNTERS_SETTLE_MS,
  );
  const { began, done, progress, switched } = cost.result;
  const last = (done ?? progress)?.line ?? {};
  const count = (k: string) => (typeof last[k] === 'number' ? last[k] : 0);
  const percent = done !== null ? 100 : typeof last.percent === 'number' ? last.percent : NaN;
  const passMs = done !== null ? count('ms') : count('ms') / (percent / 100);
  const images = count('decided') + count('carried') + count('current');
  const out: RedecideRun = {
    name: r.name,
    kind: typeof (began?.line.kind ?? last.kind) === 'string' ? String(began?.line.kind ?? last.kind) : null,
    finished: done !== null,
    percent,
    startupMs: began === null ? null : Math.round(began.atMs),
    passMs: Math.round(passMs),
    switchMs: typeof switched?.line.ms === 'number' ? switched.line.ms : null,
    decided: count('decided'),
    carried: count('carried'),
    current: count('current'),
    workerCpuMsPerImage: per(cost.result.workerCpuMs, images),
    pgCpuMsPerImage: per(cost.pgCpuMs, images),
    pgRowsWrittenPerImage: cost.pg === null ? NaN : per(cost.pg.rowsWritten, images),
    redisCommandsPerImage: per(cost.redis.commands, images),
  };
  log(
    `${r.name}: ${out.kind} pass, ${images} images (${out.decided} decided, ${out.carried} carried, ${out.current} current) in ${out.passMs} ms${out.finished ? '' : ` (extrapolated from ${percent}%)`}, replicas could switch after ${out.switchMs ?? '—'} ms`,
  );
  // Untimed: back to the seed as it was (its policy the only one), for the next scenario and run.
  await sql`DELETE FROM decisions WHERE policy_version <> ${policyVersion}`.execute(db);
  await sql`DELETE FROM policies WHERE version <> ${policyVersion}`.execute(db);
  await sql`UPDATE policies SET complete_at = coalesce(complete_at, now()) WHERE version = ${policyVersion}`.execute(db);
  await sql`VACUUM ANALYZE decisions`.execute(db);
  return out;
}

/** What the worker logs when API replicas can switch to the version (core/decider.ts). */
const SWITCHED = 'ledger decided under the new policy: API replicas switch to it';

/** The worker's last progress line of its pass, if it logged one. */
function lastProgress(w: SignetProcess): { line: Record<string, unknown> } | null {
  return w.lastLogged('re-deciding the ledger: progress');
}

const redecisions: RedecideRun[] = [];
if (phases.has('redecide')) {
  phase = 're-decision';
  for (const r of REDECISIONS) {
    redecisions.push(await redecide(r));
  }
}
await pgWatch.close();
await db.destroy();

// ---- 4. Ingest ----

const ingest: IngestRun[] = [];
if (phases.has('ingest')) {
  phase = 'ingest';
  for (const [i, workers] of values.workers.split(',').map(Number).entries()) {
    log(`ingest with ${workers} worker process(es)`);
    // What a push costs, from the first configuration only (its windows wait for Postgres's counters).
    const { stdout } = await run(
      process.execPath,
      [fileURLToPath(import.meta.url), '--child', String(workers), '--ingest-images', values['ingest-images'], '--reps', String(reps), '--concurrency', values.concurrency, '--redis', redis.url, ...(i === 0 ? ['--costs'] : [])],
      { maxBuffer: 16 << 20, env: { ...process.env, SIGNET_TEST_NAMESPACE: process.env.SIGNET_TEST_NAMESPACE ?? 'bench_scale' } },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as IngestRun;
    ingest.push(result);
    log(`ingest with ${workers}: Signet ÷ registry ${result.keepUp.median} (${result.signetPerSecond.median}/s against ${result.registryPerSecond.median}/s)`);
  }
}

clearInterval(loadSampler);
await redis.stop();
await rm(tmp, { recursive: true, force: true });
if (values.drop) {
  const admin = new pg.Client({ connectionString: `${pgServer}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(dbName)} WITH (FORCE)`);
  await admin.end();
}

const median = (xs: readonly number[]) => spread(xs);
const summarise = (all: readonly ReplicaRun[]): ReplicaSummary | null => {
  const runs = all.filter((r) => r.readyMs !== null);
  return all.length === 0
    ? null
    : {
        runs: all.length,
        notReady: all.length - runs.length,
        readyTimeoutMs: num('ready-timeout') * 1000,
        rssWhenGivenUpMiB: all.filter((r) => r.readyMs === null).map((r) => r.rssMiB),
        maxEntries: all[0]!.maxEntries,
        decisionsLoaded: runs[0]?.decisionsLoaded ?? null,
        tagsLoaded: runs[0]?.tagsLoaded ?? null,
        readyMs: median(runs.map((r) => r.readyMs!)),
        tableLoadMs: median(runs.map((r) => r.tableLoadMs ?? NaN)),
        rssMiB: median(runs.map((r) => r.rssMiB)),
        peakRssMiB: median(runs.map((r) => r.peakRssMiB)),
        first: runs.length === 0 ? null : summarisePass(runs.map((r) => r.first!)),
        second: runs.length === 0 ? null : summarisePass(runs.map((r) => r.second!)),
        graphql:
          runs[0]?.graphql === undefined
            ? null
            : Object.fromEntries(Object.keys(runs[0].graphql).map((k) => [k, { p50: median(runs.map((r) => r.graphql![k]!.p50)), p99: median(runs.map((r) => r.graphql![k]!.p99)), rps: median(runs.map((r) => r.graphql![k]!.rps)) }])),
      };
};
const summarisePass = (passes: readonly LookupPass[]) =>
  Object.fromEntries(
    (['p50', 'p99', 'apiCpuMsPerLookup', 'pgCpuMsPerLookup', 'pgStatementsPerLookup', 'pgRowsReadPerLookup', 'pgBlocksPerLookup'] as const).map((k) => [k, median(passes.map((p) => p[k]))]),
  ) as Record<Exclude<keyof LookupPass, 'answers'>, Spread>;

const result: ScaleResult = {
  date: new Date().toISOString().slice(0, 10),
  minutes: round((Date.now() - started) / 60_000, 1),
  command: `node scripts/bench-scale.ts ${process.argv.slice(2).join(' ')}`.trim(),
  machine: { cpu: `${cpus().length} × ${cpus()[0]?.model.trim() ?? '?'}`, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: `Linux ${release()}`, node: process.version },
  load: {
    all: loadOf(),
    ...Object.fromEntries(['seed', 'api replicas', 're-decision', 'ingest'].map((p) => [p, loadOf(p)])),
  },
  ledger: { ...ledger, seed: seeded, seedSeconds, policyVersion },
  reps,
  fullReps,
  lookups: num('lookups'),
  graphqlRate: num('graphql-rate'),
  graphqlSeconds: num('graphql-seconds'),
  redecideBudgetSeconds: num('redecide-budget'),
  replicas: { full: summarise(replicas.filter((r) => r.table === 'full')), bounded: summarise(replicas.filter((r) => r.table === 'bounded')) },
  replicaRuns: replicas,
  outage,
  redecisions,
  ingest,
};
console.log(JSON.stringify(result, null, 2));
if (!values['dry-run']) {
  const out = fileURLToPath(new URL('../BENCHMARKS.scale.md', import.meta.url));
  await writeFile(out, renderScaleReport(result));
  log(`wrote ${out}`);
}
