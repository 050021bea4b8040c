// bench-scale's ingest part: Signet as deployed — an ingest+api process and `workers` worker
// processes — behind a local docker-registry (the machinery of bench-ingest, lib/ingest-rig.ts),
// on a fresh ledger and the run's own Redis. Each repetition pushes and signs new images (Signet
// indexes them unsigned: the cost of an image push), then measures their signature pushes twice:
//
// - Capacity (whether Signet keeps up): the index queue paused, `concurrency` pushers push
//   `images` signatures as fast as the registry takes them (the registry's rate; Signet's ingest
//   records and queues each delivery meanwhile, as it must); then the queue resumes and Signet's
//   workers index that backlog (Signet's rate). Each rate is measured with the machine to itself
//   but for its counterpart's share of the same work (the intake; the registry serving Signet's
//   reads). Signet ÷ registry ≥ 1: Signet indexes pushes at least as fast as the registry accepts
//   them on the same hardware, so a backlog does not grow.
// - Together (latency): another `images` signatures pushed the same way while Signet indexes them,
//   pushers, registry and Signet sharing the 2 cores: push-to-decision latency, and the time from
//   the last push to the last image allowed. The rate from the first push to the last image allowed
//   cannot reach the registry's there, whatever Signet's speed: its window holds the registry's and
//   the last image's own indexing.
//
// BENCH_PROF_DIR=<dir> writes each worker process's CPU profile there (`node --cpu-prof`), for
// finding where a job's time goes.
//
// Nothing polls Signet's database while a window is measured except one count every half second
// (its statements are subtracted, its backend left out): latencies come afterwards from each
// decision's `decided_at` against the registry's acknowledgement of the signature push.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { INDEX_QUEUE } from '../../services/common/jobs/index-manifest.ts';
import type { Digest } from '../../services/common/domain/digest.ts';
import { freePort } from '../../test/helpers/net.ts';
import { TEST_WEBHOOK_TOKEN } from '../../test/helpers/signet.ts';
import { spread, type Spread } from './bench.ts';
import { createIngestRig, latencySummary, type Prepared } from './ingest-rig.ts';
import { costOf, cpuWindow, lessIdle, memoryMiB, PG_COUNTERS_SETTLE_MS, pgObserver, type Cost } from './resources.ts';

const MAIN = fileURLToPath(new URL('../../services/main.ts', import.meta.url));
const OBSERVER = 'bench-observer';

/** What one push cost Signet's processes, Postgres and Redis (per image). */
export interface PushCost {
  readonly signetCpuMs: number;
  readonly pgCpuMs: number;
  readonly pgStatements: number;
  readonly pgRowsRead: number;
  readonly pgRowsWritten: number;
  readonly redisCommands: number;
  readonly redisBytes: number;
  readonly redisCpuMs: number;
}

/** CPU per image while Signet's workers index a backlog of signature pushes, the registry's serving of their reads included. */
export interface DrainCpu {
  readonly signetCpuMs: number;
  readonly pgCpuMs: number;
  readonly redisCpuMs: number;
  readonly registryCpuMs: number;
}

export interface IngestRep {
  /** Signature pushes the registry acknowledged per second, Signet's workers paused. */
  readonly registryPerSecond: number;
  /** Images allowed per second, indexing the backlog those pushes left. */
  readonly signetPerSecond: number;
  /** Signet's rate ÷ the registry's: 1 or more, Signet keeps up. */
  readonly keepUp: number;
  /** Pushing and indexing together: the registry's rate, and Signet's from the first push to the last image allowed. */
  readonly together: { readonly registryPerSecond: number; readonly signetPerSecond: number };
  /** Together: images not yet allowed when the registry acknowledged the last signature push. */
  readonly backlogAtLastPush: number;
  /** Together: from the last signature push's acknowledgement to the last image allowed. */
  readonly drainMs: number;
  readonly pushToDecisionMs: ReturnType<typeof latencySummary>;
  /** Null unless this run measured costs (see `costs`). */
  readonly drainCpu: DrainCpu | null;
  readonly perImagePush: PushCost | null;
  readonly perSignaturePush: PushCost | null;
}

export interface IngestRun {
  readonly workers: number;
  readonly images: number;
  readonly concurrency: number;
  readonly reps: readonly IngestRep[];
  readonly registryPerSecond: Spread;
  readonly signetPerSecond: Spread;
  readonly keepUp: Spread;
  readonly together: { readonly registryPerSecond: Spread; readonly signetPerSecond: Spread; readonly drainMs: Spread };
  readonly pushToDecisionP99: Spread;
  readonly drainCpu: Record<keyof DrainCpu, Spread> | null;
  readonly perImagePush: Record<keyof PushCost, Spread> | null;
  readonly perSignaturePush: Record<keyof PushCost, Spread> | null;
  readonly peakRssMiB: { readonly ingest: number; readonly worker: number };
}

function perImage(raw: Cost<unknown>, idle: Cost<unknown>, n: number, observerStatements: number): PushCost {
  const cost = lessIdle(raw, idle);
  const r = (x: number | undefined, d = 2) => (x === undefined ? NaN : Number((x / n).toFixed(d)));
  return {
    signetCpuMs: r(cost.cpuMs),
    pgCpuMs: r(cost.pgCpuMs),
    pgStatements: r(cost.pg === null ? undefined : cost.pg.xacts - observerStatements, 1),
    pgRowsRead: r(cost.pg?.rowsRead, 0),
    pgRowsWritten: r(cost.pg?.rowsWritten, 1),
    redisCommands: r(cost.redis.commands, 1),
    redisBytes: r(cost.redis.bytesIn + cost.redis.bytesOut, 0),
    redisCpuMs: r(cost.redis.cpuMs),
  };
}

/**
 * `costs`: also measure what each push costs (the processes' CPU, Postgres's and Redis's work, less
 * what they spend idle); each measured window then waits for Postgres's counters (about 11 s).
 */
export async function runIngest(opts: { workers: number; images: number; reps: number; concurrency: number; redisUrl: string; costs: boolean }): Promise<IngestRun> {
  const rig = await createIngestRig();
  const prefix = `bench-scale-ingest-${process.pid}`;
  const env = { PATH: process.env.PATH ?? '', ...rig.env, REDIS_URL: opts.redisUrl, SIGNET_QUEUE_PREFIX: prefix, HOST: '127.0.0.1', LOG_LEVEL: 'warn', SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN };
  const port = await freePort();
  const processes: ChildProcess[] = [];
  const start = (roles: string, p: number) => {
    const child = spawn(process.execPath, [...(process.env.BENCH_PROF_DIR !== undefined && roles === 'worker' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : []), MAIN], { env: { ...env, SIGNET_ROLES: roles, PORT: String(p) }, stdio: ['ignore', 'inherit', 'inherit'] });
    processes.push(child);
    return child;
  };
  // As deployed: ingest and api in one process, each worker in its own.
  const ingest = start('ingest,api', port);
  const workers = Array.from({ length: opts.workers }, () => start('worker', 0));
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (ingest.exitCode !== null) {
      throw new Error(`the ingest process exited with ${ingest.exitCode}`);
    }
    if (await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false)) {
      break;
    }
    await sleep(100);
  }
  const registry = await rig.startRegistry(`${url}/webhooks/distribution`);
  const dbUrl = new URL(rig.env.DATABASE_URL!);
  const watch = await pgObserver(`${dbUrl.protocol}//${dbUrl.username}@${dbUrl.host}`, dbUrl.pathname.slice(1), { excludeApplication: OBSERVER });
  const observer = new pg.Client({ connectionString: rig.env.DATABASE_URL, application_name: OBSERVER });
  await observer.connect();
  let statements = 0;
  /** Waits (polling twice a second) until every digest has a decision, allowed ones when `allowed`. */
  const decided = async (digests: readonly Digest[], allowed: boolean, timeoutMs = 300_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      statements++;
      const { rows } = await observer.query<{ n: string }>(
        `SELECT count(*) AS n FROM decisions d JOIN manifests m ON m.id = d.manifest_id WHERE m.digest = ANY($1) AND ($2 = false OR d.allowed)`,
        [digests, allowed],
      );
      if (Number(rows[0]!.n) >= digests.length) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`${digests.length - Number(rows[0]!.n)} of ${digests.length} images not ${allowed ? 'allowed' : 'decided'} within ${timeoutMs / 1000} s`);
      }
      await sleep(500);
    }
  };
  const pids = () => [ingest, ...workers].map((c) => c.pid!).filter((p) => p !== undefined);
  const measure = <T>(work: () => Promise<T>) => costOf({ pids, pg: watch, redisUrl: opts.redisUrl, settleMs: opts.costs ? PG_COUNTERS_SETTLE_MS : 0 }, work);
  // The benchmark's own handle on Signet's index queue, to hold its workers while the registry's rate is measured.
  const queueRedis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
  const index = new Queue(INDEX_QUEUE, { connection: queueRedis, prefix });
  /** Images `from`..`from + images`, pushed and signed (their signatures not pushed), each decided unsigned. */
  const prepareImages = async (from: number) => {
    const out: Prepared[] = [];
    for (let i = from; i < from + opts.images; i++) {
      out.push(await rig.prepare(i));
    }
    await decided(
      out.map((p) => p.digest),
      false,
    );
    return out;
  };
  /** The signatures of `list`, by `concurrency` pushers, as fast as the registry acknowledges them. */
  const pushSignatures = async (list: readonly Prepared[], acks: Map<Digest, number>) => {
    const pushStart = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (next < list.length) {
          const { digest, ackWall } = await rig.pushSignature(list[next++]!);
          acks.set(digest, ackWall);
        }
      }),
    );
    return { pushStart, lastAck: Math.max(...acks.values()) };
  };
  /** When each of `digests` was allowed (the decision's `decided_at`). */
  const allowedAt = async (digests: readonly Digest[]) => {
    statements++;
    const { rows } = await observer.query<{ digest: Digest; at: Date }>(
      `SELECT m.digest, d.decided_at AS at FROM decisions d JOIN manifests m ON m.id = d.manifest_id WHERE m.digest = ANY($1) AND d.allowed`,
      [digests],
    );
    return rows;
  };
  /** Waits until the paused queue holds every delivery's job: its count unchanged for a second. */
  const queued = async () => {
    let last = -1;
    for (;;) {
      const counts = await index.getJobCounts('wait', 'paused', 'prioritized', 'delayed');
      const n = Object.values(counts).reduce((a, b) => a + b, 0);
      if (n === last) {
        return n;
      }
      last = n;
      await sleep(1_000);
    }
  };
  const reps: IngestRep[] = [];
  try {
    // What the processes spend with nothing to do (timers, queue polling, the decision feed's reads).
    const idle = opts.costs ? await measure(() => sleep(10_000)) : null;
    for (let rep = 0; rep < opts.reps; rep++) {
      // Capacity. The registry's rate with Signet's workers held, then Signet's on the backlog.
      const backlog = await prepareImages(2 * rep * opts.images);
      await index.pause();
      const capacityPush = await pushSignatures(backlog, new Map());
      const jobs = await queued();
      const registryCpu = cpuWindow(() => [registry.pid]);
      await registryCpu.start();
      const resumedAt = Date.now();
      const drain = await costOf({ pids, pg: watch, redisUrl: opts.redisUrl }, async () => {
        await index.resume();
        await decided(
          backlog.map((p) => p.digest),
          true,
        );
      });
      const registryCpuMs = await registryCpu.stop();
      const capacityLast = Math.max(...(await allowedAt(backlog.map((p) => p.digest))).map((r) => r.at.getTime()));
      const registryPerSecond = backlog.length / ((capacityPush.lastAck - capacityPush.pushStart) / 1000);
      const signetPerSecond = backlog.length / ((capacityLast - resumedAt) / 1000);
      process.stderr.write(`[bench:scale ingest ${opts.workers}] capacity: ${jobs} jobs queued for ${backlog.length} signature pushes\n`);

      // Together. Untimed for latency, but measured for cost: image pushes, indexed unsigned.
      const before = statements;
      const prepared = await measure(() => prepareImages((2 * rep + 1) * opts.images));
      const imageObserver = statements - before;
      const list = prepared.result;
      // Timed: the signatures, pushed while Signet indexes them.
      const acks = new Map<Digest, number>();
      const beforeSignatures = statements;
      const pushed = await measure(async () => {
        const window = await pushSignatures(list, acks);
        await decided(
          list.map((p) => p.digest),
          true,
        );
        return window;
      });
      const signatureObserver = statements - beforeSignatures;
      const rows = await allowedAt(list.map((p) => p.digest));
      const { pushStart, lastAck } = pushed.result;
      const lastDecided = Math.max(...rows.map((r) => r.at.getTime()));
      const latencies = rows.map((r) => r.at.getTime() - acks.get(r.digest)!);
      reps.push({
        registryPerSecond: Number(registryPerSecond.toFixed(1)),
        signetPerSecond: Number(signetPerSecond.toFixed(1)),
        keepUp: Number((signetPerSecond / registryPerSecond).toFixed(2)),
        together: {
          registryPerSecond: Number((list.length / ((lastAck - pushStart) / 1000)).toFixed(1)),
          signetPerSecond: Number((list.length / ((lastDecided - pushStart) / 1000)).toFixed(1)),
        },
        drainCpu:
          idle === null
            ? null
            : {
                signetCpuMs: Number((lessIdle(drain, idle).cpuMs / backlog.length).toFixed(2)),
                pgCpuMs: Number((lessIdle(drain, idle).pgCpuMs / backlog.length).toFixed(2)),
                redisCpuMs: Number((drain.redis.cpuMs / backlog.length).toFixed(2)),
                registryCpuMs: Number((registryCpuMs / backlog.length).toFixed(2)),
              },
        backlogAtLastPush: rows.filter((r) => r.at.getTime() > lastAck).length,
        drainMs: Math.max(0, lastDecided - lastAck),
        pushToDecisionMs: latencySummary(latencies),
        perImagePush: idle === null ? null : perImage(prepared, idle, list.length, imageObserver),
        perSignaturePush: idle === null ? null : perImage(pushed, idle, list.length, signatureObserver),
      });
      process.stderr.write(`[bench:scale ingest ${opts.workers}] ${JSON.stringify(reps.at(-1))}\n`);
    }
    const peak = await Promise.all(pids().map(async (p) => (await memoryMiB(p))?.peak ?? NaN));
    const of = (pick: (r: IngestRep) => number, d = 2) => spread(reps.map(pick), d);
    /** Each figure's spread over the repetitions. */
    const costs = <T extends object>(pick: (r: IngestRep) => T | null): Record<keyof T, Spread> | null => {
      const first = pick(reps[0]!);
      return first === null ? null : (Object.fromEntries((Object.keys(first) as (keyof T)[]).map((k) => [k, of((r) => pick(r)![k] as number)])) as Record<keyof T, Spread>);
    };
    return {
      workers: opts.workers,
      images: opts.images,
      concurrency: opts.concurrency,
      reps,
      registryPerSecond: of((r) => r.registryPerSecond, 1),
      signetPerSecond: of((r) => r.signetPerSecond, 1),
      keepUp: of((r) => r.keepUp),
      together: { registryPerSecond: of((r) => r.together.registryPerSecond, 1), signetPerSecond: of((r) => r.together.signetPerSecond, 1), drainMs: of((r) => r.drainMs, 0) },
      pushToDecisionP99: of((r) => r.pushToDecisionMs.p99, 0),
      drainCpu: costs((r) => r.drainCpu),
      perImagePush: costs((r) => r.perImagePush),
      perSignaturePush: costs((r) => r.perSignaturePush),
      peakRssMiB: { ingest: peak[0]!, worker: Math.max(...peak.slice(1)) },
    };
  } finally {
    await index.close();
    queueRedis.disconnect();
    await observer.end();
    await watch.close();
    for (const child of processes) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    await rig.stop();
  }
}
