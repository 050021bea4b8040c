// Ingest on real parts: a local docker-registry notifying an in-process Signet (all roles), real
// Postgres and Redis. Untimed first: every image is pushed (Signet indexes it, unsigned) and
// signed — half keyless with the test PKI, half with a key and a Rekor entry — so that signing does
// not compete with Signet for this process's CPU. Timed: the cosign signatures are pushed; the
// clock starts when the registry acknowledges a signature push (201) and stops when the image's
// decision under the policy is `allowed` in the ledger.
//
// Two runs: at a fixed push rate (latency, p50/p99, with a per-stage breakdown from the signature
// jobs' BullMQ timestamps), then as fast as the registry takes pushes (sustained images/s). The
// worker process's RSS is sampled throughout.
//
//   node scripts/bench-ingest.ts [--images 300] [--rate 20] [--saturate 200] [--concurrency 8]
//
// Prints JSON. A measurement, not a test: numbers depend on the machine.
import { execFile, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { Digest } from '../services/common/domain/digest.ts';
import { eventually, startTestSignet } from '../test/helpers/signet.ts';
import { createIngestRig, latencySummary as summary, type Prepared } from './lib/ingest-rig.ts';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '300' },
    rate: { type: 'string', default: '20' },
    saturate: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
  },
});
const count = Number(values.images);
const rate = Number(values.rate);
const saturateCount = Number(values.saturate);
const concurrency = Number(values.concurrency);

const rig = await createIngestRig();
const env = { ...rig.env, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' };
// As deployed: ingest and api in one process (here, in-process), the worker in its own — its
// synchronous signature verification would otherwise delay webhook answers, and the registry
// sends notifications one at a time.
const signet = await startTestSignet({ ...env, SIGNET_ROLES: 'ingest,api' });
const worker = spawn(process.execPath, [fileURLToPath(new URL('../services/main.ts', import.meta.url))], {
  env: { PATH: process.env.PATH ?? '', ...env, REDIS_URL: signet.config.redis.url, SIGNET_QUEUE_PREFIX: signet.config.redis.queuePrefix, SIGNET_ROLES: 'worker', PORT: '0', HOST: '127.0.0.1' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
let workerRss = 0;
await rig.startRegistry(`${signet.url}/webhooks/distribution`);

let rssMax = 0;
const ps = promisify(execFile);
const rssSampler = setInterval(() => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
  void ps('ps', ['-o', 'rss=', '-p', String(worker.pid)]).then(
    ({ stdout }) => (workerRss = Math.max(workerRss, Number(stdout.trim()) * 1024)),
    () => undefined,
  );
}, 200);

async function prepareAll(from: number, n: number): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (let i = from; i < from + n; i++) {
    out.push(await rig.prepare(i));
  }
  // Let Signet index the unsigned images before the clock runs.
  await eventually(async () => {
    const c = await signet.queue!.getJobCounts('waiting', 'active', 'delayed');
    return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0 ? true : undefined;
  }, 'an idle queue', 120_000);
  return out;
}

const pushSignature = (p: Prepared) => rig.pushSignature(p);
/** Waits until every digest in `pending` is allowed; returns latency (ms) per digest. */
async function observe(pending: Map<Digest, number>, untilDone: () => boolean): Promise<Map<Digest, number>> {
  const seen = await rig.observe(pending, untilDone);
  if (pending.size > 0) {
    console.error(`job counts ${JSON.stringify(await signet.queue!.getJobCounts())}`);
  }
  return seen;
}

// 1. At a fixed rate.
const prepared = await prepareAll(0, count);
const pending = new Map<Digest, number>();
const acks = new Map<Digest, number>();
let pushing = true;
const observed = observe(pending, () => !pushing);
const started = performance.now();
const pushes: Promise<void>[] = [];
for (let i = 0; i < count; i++) {
  const wait = started + (i * 1000) / rate - performance.now();
  if (wait > 0) {
    await sleep(wait);
  }
  pushes.push(
    pushSignature(prepared[i]!).then(({ digest, ackAt, ackWall }) => {
      pending.set(digest, ackAt);
      acks.set(digest, ackWall);
    }),
  );
}
await Promise.all(pushes);
const offeredSeconds = (performance.now() - started) / 1000;
pushing = false;
const latencies = await observed;

// Per stage, from the signature jobs: registry notification → job queued, queue wait, the job
// itself (registry fetch, verification, ledger write, decision and its publication).
const jobs = await signet.queue!.getJobs(['completed'], 0, -1);
const stages = { notifyToQueued: [] as number[], queueWait: [] as number[], job: [] as number[] };
for (const job of jobs) {
  const data = job.data as { digest?: Digest; trigger?: { kind: string } };
  const ack = data.digest === undefined ? undefined : acks.get(data.digest);
  if (data.trigger?.kind !== 'signature' || ack === undefined || job.processedOn === undefined || job.finishedOn === undefined) {
    continue;
  }
  stages.notifyToQueued.push(job.timestamp - ack);
  stages.queueWait.push(job.processedOn - job.timestamp);
  stages.job.push(job.finishedOn - job.processedOn);
}

// 2. Saturation: `concurrency` pushers back to back.
const satPrepared = await prepareAll(count, saturateCount);
const satPending = new Map<Digest, number>();
let satPushing = true;
const satObserved = observe(satPending, () => !satPushing);
const satStarted = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < saturateCount) {
      const { digest, ackAt } = await pushSignature(satPrepared[next++]!);
      satPending.set(digest, ackAt);
    }
  }),
);
satPushing = false;
const satLatencies = await satObserved;
const satSeconds = (performance.now() - satStarted) / 1000;
clearInterval(rssSampler);

console.log(
  JSON.stringify(
    {
      atRate: {
        images: count,
        offeredPushesPerSecond: rate,
        achievedPushesPerSecond: Number((count / offeredSeconds).toFixed(1)),
        allowed: latencies.size,
        pushToDecisionMs: summary([...latencies.values()]),
        stagesMs: {
          registryNotifyToQueued: summary(stages.notifyToQueued),
          queueWait: summary(stages.queueWait),
          job: summary(stages.job),
        },
      },
      saturated: {
        images: saturateCount,
        concurrency,
        allowed: satLatencies.size,
        imagesPerSecond: Number((satLatencies.size / satSeconds).toFixed(1)),
        pushToDecisionMs: summary([...satLatencies.values()]),
      },
      rssMaxMiB: { worker: Math.round(workerRss / 1048576), 'ingest+api and the bench harness': Math.round(rssMax / 1048576) },
    },
    null,
    2,
  ),
);

worker.kill('SIGTERM');
await new Promise((r) => worker.once('exit', r));
await signet.stop();
await rig.stop();
