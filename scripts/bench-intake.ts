// Webhook intake against a fair yardstick measured in the same run: Signet's ingest role (its own
// process, `node services/main.ts`, SIGNET_ROLES=ingest, logs at info to /dev/null as deployed)
// and a bare node:http server (its own process too) that reads the same delivery, checks the same
// bearer token, parses the JSON and answers 202 with the bytes Signet answered (captured once).
// The deliveries are distribution push notifications (one manifest pushed by tag, each a different
// digest), what a registry sends on every `docker push`.
// A second yardstick, the durable one, does the same and also the two writes Signet's 202 stands
// for, plainly, one after the other for each delivery: one BullMQ job added (Redis) and one row
// inserted and committed in Postgres, in a table made LIKE webhook_deliveries (same columns,
// indexes and constraints) with the same statement shape. Signet ÷ durable yardstick is Signet's
// own overhead over the writes; Signet ÷ bare yardstick includes the writes themselves.
//
// Two loads, each from its own load process on loopback: serial (one connection, one request at a
// time — distribution sends its notifications so) and concurrent (`--connections`, closed loop).
// Signet and the yardstick take turns, alternating which goes first, `--repetitions` times; figures
// are medians with their spread, ratios taken within a repetition; with each load, the server's
// CPU time per delivery answered (steadier than throughput on a shared machine). Afterwards, every
// delivery Signet answered 202 must be in Postgres (the receipts recorded, sum of received_count,
// at least its 202 count: a request the load generator gave up on may be recorded unanswered) and
// the queue must hold every job the records name: the guarantee the speed must not cost.
//
//   node scripts/bench-intake.ts [--seconds 5] [--connections 16] [--repetitions 3] [--loads serial,concurrent] [--profile DIR]
//
// --profile DIR: Signet's process runs under --cpu-prof, its profile written to DIR at exit.
// Prints JSON. A measurement, not a test: absolute numbers depend on the machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdir, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import pg from 'pg';
import { INDEX_QUEUE, IndexManifestJob } from '../services/common/jobs/index-manifest.ts';
import setupTemplate from '../test/global-setup.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { freePort } from '../test/helpers/net.ts';
import { deleteQueueKeys, TEST_REDIS_URL, TEST_WEBHOOK_TOKEN } from '../test/helpers/signet.ts';
import { runLoad, spread, type Load } from './lib/bench.ts';

/** The durable yardstick's table, made LIKE webhook_deliveries in the benchmark's database. */
const YARDSTICK_TABLE = 'bench_intake_yardstick';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    repetitions: { type: 'string', default: '3' },
    profile: { type: 'string' },
    // Which loads to run (a profile of one alone): serial, concurrent or both.
    loads: { type: 'string', default: 'serial,concurrent' },
    // Internal: run as the yardstick on this port, answering this 202 body; with --durable, also
    // writing each delivery to this database's table and this Redis's queue (prefix).
    yardstick: { type: 'string' },
    answer: { type: 'string' },
    durable: { type: 'string' },
    redis: { type: 'string' },
    prefix: { type: 'string' },
  },
});

if (values.yardstick !== undefined) {
  const answer = Buffer.from(values.answer ?? '{}');
  const expected = `Bearer ${TEST_WEBHOOK_TOKEN}`;
  const write = values.durable === undefined ? null : durableWrites(values.durable, values.redis!, values.prefix!);
  let answered = 0;
  createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/count') {
      res.end(String(answered));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.headers.authorization !== expected) {
        res.writeHead(401).end();
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(text) as { events?: { target?: { digest?: string; repository?: string } }[] };
      if (!Array.isArray(body.events)) {
        res.writeHead(400).end();
        return;
      }
      const respond = () => {
        answered += 1;
        res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': answer.length }).end(answer);
      };
      if (write === null || body.events.length === 0) {
        respond();
        return;
      }
      write(text, body.events[0]?.target ?? {}).then(respond, (err: unknown) => res.writeHead(503).end(String(err)));
    });
  }).listen(Number(values.yardstick), '127.0.0.1', () => process.stdout.write('listening\n'));
} else {
  await main();
}

/**
 * The durable yardstick's writes for one delivery, plainly and one after the other: a BullMQ job
 * (what the worker would index) and a row committed in Postgres (the same statement shape as the
 * delivery record, in a table LIKE webhook_deliveries); no validation, no grouping.
 */
function durableWrites(database: string, redisUrl: string, prefix: string) {
  const pool = new pg.Pool({ connectionString: database, max: 16 });
  const queue = new Queue(INDEX_QUEUE, { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix });
  return async (payload: string, target: { digest?: string; repository?: string }): Promise<void> => {
    const sha = createHash('sha256').update(payload).digest('hex');
    const data = { registry: 'registry.bench', repository: target.repository, digest: target.digest, trigger: { kind: 'push' } };
    const job = await queue.add(IndexManifestJob.name, data, { ...IndexManifestJob.options, jobId: `push-${sha}` });
    await pool.query(
      `INSERT INTO ${YARDSTICK_TABLE} (source, status_code, result, event_count, job_ids, payload, payload_sha256)
       VALUES ('distribution', 202, 'queued 1', 1, $1, $2, $3)
       ON CONFLICT (source, payload_sha256) DO UPDATE SET received_count = ${YARDSTICK_TABLE}.received_count + 1,
         last_received_at = greatest(${YARDSTICK_TABLE}.last_received_at, excluded.last_received_at)
       RETURNING id`,
      [[job.id], payload, sha],
    );
  };
}

async function main(): Promise<void> {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const repetitions = Math.max(1, Number(values.repetitions));
  const REGISTRY = 'registry.bench';
  const EVENTS_V2 = 'application/vnd.docker.distribution.events.v2+json';

  await setupTemplate();
  const db = await createTestDb();
  const prefix = `signet-bench-intake-${process.pid}`;

  /** One distribution notification: manifest `i` pushed by tag. */
  const delivery = (i: number) => {
    const digest = `sha256:${createHash('sha256').update(`manifest-${i}`).digest('hex')}`;
    const repository = `team/app${i % 50}`;
    return JSON.stringify({
      events: [
        {
          id: `bench-${i}-${createHash('md5').update(String(i)).digest('hex').slice(0, 12)}`,
          timestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(),
          action: 'push',
          target: {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest,
            size: 1234,
            length: 1234,
            repository,
            url: `https://${REGISTRY}/v2/${repository}/manifests/${digest}`,
            tag: `v${i}`,
          },
          request: { id: `req-${i}`, addr: '10.0.0.7:53211', host: REGISTRY, method: 'PUT', useragent: 'docker/27.3.1 go/go1.22.7' },
          actor: { name: 'ci' },
          source: { addr: 'registry-0:5000', instanceID: '2b1a6c1e-9a5e-4c4e-9a36-1f0d9f1b2c3d' },
        },
      ],
    });
  };
  const bodies = Array.from({ length: 20_000 }, (_, i) => delivery(i));

  const main = fileURLToPath(new URL('../services/main.ts', import.meta.url));
  const self = fileURLToPath(import.meta.url);
  const started: ChildProcess[] = [];
  const listen = async (args: string[], env: Record<string, string>, ready: (url: string) => Promise<boolean>, url: string) => {
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    started.push(child);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
      }
      if (await ready(url).catch(() => false)) {
        return child;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${args.join(' ')} did not start`);
  };

  const signetPort = await freePort();
  const signetUrl = `http://127.0.0.1:${signetPort}`;
  const profileDir = values.profile === undefined ? null : resolve(values.profile);
  if (profileDir !== null) {
    await mkdir(profileDir, { recursive: true });
  }
  const signet = await listen(
    [...(profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]), main],
    {
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      SIGNET_ROLES: 'ingest',
      SIGNET_QUEUE_PREFIX: prefix,
      SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN,
      SIGNET_ALLOWED_REGISTRIES: REGISTRY,
      SIGNET_TUF_REFRESH: '0',
      PORT: String(signetPort),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    },
    async (u) => (await fetch(`${u}/readyz`)).status === 200,
    signetUrl,
  );

  const headers = { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': EVENTS_V2 };
  const first = await fetch(`${signetUrl}/webhooks/distribution`, { method: 'POST', headers, body: delivery(-1) });
  if (first.status !== 202) {
    throw new Error(`Signet answered ${first.status}: ${await first.text()}`);
  }
  const answer = await first.text();

  const barePort = await freePort();
  const bareUrl = `http://127.0.0.1:${barePort}`;
  const bare = await listen([self, '--yardstick', String(barePort), '--answer', answer], {}, async (u) => (await fetch(u, { method: 'POST', headers, body: '{"events":[]}' })).status === 202, bareUrl);
  await sql`CREATE TABLE ${sql.table(YARDSTICK_TABLE)} (LIKE webhook_deliveries INCLUDING ALL)`.execute(db.db);
  const durablePort = await freePort();
  const durableUrl = `http://127.0.0.1:${durablePort}`;
  const durable = await listen(
    [self, '--yardstick', String(durablePort), '--answer', answer, '--durable', db.url, '--redis', TEST_REDIS_URL, '--prefix', `${prefix}-yardstick`],
    {},
    async (u) => (await fetch(u, { method: 'POST', headers, body: '{"events":[]}' })).status === 202,
    durableUrl,
  );

  type Measured = Load & { cpuUsPerDelivery: number };
  /** CPU seconds a child has used (user + system, from /proc: 10 ms ticks). */
  const cpuOf = async (child: ChildProcess) => {
    const fields = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  /** Deliveries a server has answered 202 so far. */
  const answeredBy = async (url: string) => {
    if (url === bareUrl || url === durableUrl) {
      return Number(await (await fetch(`${url}/count`)).text());
    }
    const text = await (await fetch(`${url}/metrics`)).text();
    return Number(/^signet_webhook_deliveries_total\{[^}]*status="202"[^}]*\} (\d+)/m.exec(text)?.[1] ?? NaN);
  };
  const loads = new Set(values.loads.split(','));
  const none: Measured = { rps: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN, errors: 0, non2xx: 0, cpuUsPerDelivery: NaN };
  /** One load; with the server's CPU per delivery answered over it (its warm-up included). */
  const load = async (url: string, n: number): Promise<Measured> => {
    if (!loads.has(n === 1 ? 'serial' : 'concurrent')) {
      return none;
    }
    const child = url === bareUrl ? bare : url === durableUrl ? durable : signet;
    const [cpu0, n0] = [await cpuOf(child), await answeredBy(url)];
    const figures = await runLoad({ url: `${url}/webhooks/distribution`, bodies, connections: n, seconds, headers });
    const [cpu1, n1] = [await cpuOf(child), await answeredBy(url)];
    return { ...figures, cpuUsPerDelivery: Math.round(((cpu1 - cpu0) * 1e6) / Math.max(1, n1 - n0)) };
  };

  interface Run {
    signet: { serial: Measured; concurrent: Measured };
    bare: { serial: Measured; concurrent: Measured };
    durable: { serial: Measured; concurrent: Measured };
  }
  const runs: Run[] = [];
  for (let rep = 0; rep < repetitions; rep++) {
    process.stderr.write(`[bench-intake] repetition ${rep + 1}/${repetitions}\n`);
    // Each repetition in another order, so a busier moment does not always weigh on the same one.
    const orders = [
      ['signet', 'bare', 'durable'],
      ['durable', 'signet', 'bare'],
      ['bare', 'durable', 'signet'],
    ] as const;
    const run: Partial<Run> = {};
    for (const who of orders[rep % orders.length]!) {
      const url = who === 'signet' ? signetUrl : who === 'bare' ? bareUrl : durableUrl;
      run[who] = { serial: await load(url, 1), concurrent: await load(url, connections) };
    }
    runs.push(run as Run);
  }

  // Nothing answered 202 is missing: every one is a delivery row (or a receipt counted on one), and
  // every row's jobs are in the queue.
  const accepted = await answeredBy(signetUrl);
  const recorded = await db.db
    .selectFrom('webhook_deliveries')
    .select((eb) => [eb.fn.sum<string>('received_count').as('receipts'), eb.fn.countAll<string>().as('rows')])
    .executeTakeFirstOrThrow();
  const jobIds = new Set((await db.db.selectFrom('webhook_deliveries').select('job_ids').execute()).flatMap((r) => r.job_ids));
  const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue(INDEX_QUEUE, { connection, prefix });
  const queued = await queue.count();
  const exists = await connection
    .pipeline([...jobIds].map((id) => ['exists', `${prefix}:${INDEX_QUEUE}:${id}`]))
    .exec();
  const missingJobs = (exists ?? []).filter(([err, n]) => err !== null || n !== 1).length;
  await queue.close();
  connection.disconnect();

  for (const child of started) {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
  }
  await deleteQueueKeys(TEST_REDIS_URL, prefix);
  await deleteQueueKeys(TEST_REDIS_URL, `${prefix}-yardstick`);
  await db.drop();

  const side = (who: 'signet' | 'bare' | 'durable') => ({
    serialRps: spread(runs.map((r) => r[who].serial.rps), 0),
    serialP50Ms: spread(runs.map((r) => r[who].serial.p50)),
    serialP99Ms: spread(runs.map((r) => r[who].serial.p99)),
    concurrentRps: spread(runs.map((r) => r[who].concurrent.rps), 0),
    concurrentP99Ms: spread(runs.map((r) => r[who].concurrent.p99)),
    serialCpuUsPerDelivery: spread(runs.map((r) => r[who].serial.cpuUsPerDelivery), 0),
    concurrentCpuUsPerDelivery: spread(runs.map((r) => r[who].concurrent.cpuUsPerDelivery), 0),
  });
  console.log(
    JSON.stringify(
      {
        seconds,
        connections,
        repetitions,
        requestBytes: Buffer.byteLength(bodies[0]!),
        signet: side('signet'),
        bare: side('bare'),
        durable: side('durable'),
        // Signet ÷ yardstick within each repetition (goal ≥ 0.5).
        serialVsBare: spread(runs.map((r) => r.signet.serial.rps / r.bare.serial.rps)),
        concurrentVsBare: spread(runs.map((r) => r.signet.concurrent.rps / r.bare.concurrent.rps)),
        // Signet ÷ the durable yardstick: Signet's own overhead over the two writes.
        serialVsDurable: spread(runs.map((r) => r.signet.serial.rps / r.durable.serial.rps)),
        concurrentVsDurable: spread(runs.map((r) => r.signet.concurrent.rps / r.durable.concurrent.rps)),
        errors: runs.reduce((n, r) => n + r.signet.serial.errors + r.signet.serial.non2xx + r.signet.concurrent.errors + r.signet.concurrent.non2xx, 0),
        durability: {
          answered202: accepted,
          receiptsRecorded: Number(recorded.receipts),
          rows: Number(recorded.rows),
          jobsQueued: queued,
          recordedJobsMissingFromQueue: missingJobs,
        },
        ...(profileDir === null ? {} : { profileDir }),
      },
      null,
      2,
    ),
  );
}
