// Decision endpoints against a fair yardstick measured in the same run: for each endpoint, a bare
// node:http(s) server that reads and parses the same request (JSON body, or the query string) and
// answers the very bytes Signet answered for it (captured once from Signet at the start). So the
// ratio is Signet's own overhead — routing, validation, lookups, serialisation — and nothing else.
// Endpoints: the native single lookup (GET /v1/decisions), OPA's POST /verify, the Gatekeeper batch
// (10 images) and a Kubernetes AdmissionReview (a Pod with 3 containers), over HTTP and HTTPS
// (TLS 1.3). For each: throughput at saturation (autocannon, closed loop) and latency at a fixed
// moderate rate (open loop, sub-millisecond timing), Signet and its yardstick one after the other,
// each from its own load process on loopback; all of it repeated (default 3 times) and reported as
// medians with their spread. Then the decision table's memory per entry at 100k and 1M entries. And
// the admission record's cost: the AdmissionReview endpoint saturated with recording on (the
// default) and off (SIGNET_ADMISSION_RECORD=off), alternating, 5 repetitions each, in the same run:
// throughput and CPU per request.
//
//   node --expose-gc scripts/bench-decisions.ts [--seconds 5] [--connections 10] [--rate 500] [--repetitions 3] [--quick] [--recording-only]
//
// Prints JSON. A measurement, not a test: absolute numbers depend on the machine; the ratios are
// what to compare.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DecisionTable } from '../services/api/decision-table.ts';
import { sha256Digest } from '../services/common/domain/digest.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import setupTemplate from '../test/global-setup.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { seedAllowedImages } from '../test/helpers/ledger.ts';
import { startTestSignet } from '../test/helpers/signet.ts';
import { runLoad, spread, type Load, type Spread } from './lib/bench.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    repetitions: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    // Only the admission record's on/off comparison (and none of the rest).
    'recording-only': { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const seconds = quick ? 1 : Number(values.seconds);
const warmup = quick ? 1 : 2;
const connections = Number(values.connections);
const moderate = Number(values.rate);
const repetitions = Math.max(1, Number(values.repetitions));

await setupTemplate();

const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-'));
// A self-signed certificate for 127.0.0.1, for the HTTPS runs.
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: tmp, stdio: 'ignore' });
const tlsFiles = { cert: await readFile(join(tmp, 'tls.crt')), key: await readFile(join(tmp, 'tls.key')) };

// Signet (api role) with 10 images in its ledger, each decided under the policy.
const db = await createTestDb();
const policyText = `allow_with_verification:
  registry.bench:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;
await writeFile(join(tmp, 'policy.yaml'), policyText);
const policy = parsePolicy(policyText);
const digests = Array.from({ length: 10 }, (_, i) => sha256Digest(`image-${i}`));
await seedAllowedImages(db.db, {
  registry: 'registry.bench',
  repository: 'team/app',
  digests,
  policyVersion: policy.version,
  signer: { subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
});
const images = digests.map((d) => `registry.bench/team/app@${d}`);
const env = { DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml'), LOG_LEVEL: 'warn' };
const signet = {
  http: await startTestSignet(env),
  https: await startTestSignet({ ...env, SIGNET_TLS_CERT: join(tmp, 'tls.crt'), SIGNET_TLS_KEY: join(tmp, 'tls.key') }),
};
const unrecorded = await startTestSignet({ ...env, SIGNET_ADMISSION_RECORD: 'off' });

const gatekeeper = JSON.stringify({ apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: images } });
const admission = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    namespace: 'bench',
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bench', namespace: 'bench' },
      spec: { containers: images.slice(0, 3).map((image, i) => ({ name: `c${i}`, image })) },
    },
  },
});
/** Each endpoint's path (with its query) and its one request body (null: a GET). */
const endpoints: Record<string, { path: string; body: string | null }> = {
  'native GET /v1/decisions (1 image)': { path: `/v1/decisions?image=${encodeURIComponent(images[0]!)}`, body: null },
  'OPA POST /verify (1 image)': { path: '/verify', body: JSON.stringify({ image: images[0] }) },
  'gatekeeper /gatekeeper/validate (10 images)': { path: '/gatekeeper/validate', body: gatekeeper },
  'admission /admission/validate (Pod, 3 containers)': { path: '/admission/validate', body: admission },
};

/** Signet's answer for each endpoint, captured once: what the yardstick answers, byte for byte. */
const captured = new Map<string, { status: number; contentType: string; body: Buffer }>();
for (const e of Object.values(endpoints)) {
  const res = await fetch(`${signet.http.url}${e.path}`, e.body === null ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: e.body });
  if (res.status !== 200) {
    throw new Error(`${e.path}: Signet answered ${res.status}: ${await res.text()}`);
  }
  captured.set(e.path.split('?')[0]!, { status: res.status, contentType: res.headers.get('content-type') ?? 'application/json', body: Buffer.from(await res.arrayBuffer()) });
}

// The yardstick: read the request, parse it as Signet must (the JSON body, or the query string),
// route by path, answer the captured bytes.
const yardstick = (req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const q = req.url!.indexOf('?');
    const path = q === -1 ? req.url! : req.url!.slice(0, q);
    const parsed: unknown = req.method === 'GET' ? new URLSearchParams(req.url!.slice(q + 1)).get('image') : JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const answer = captured.get(path);
    if (answer === undefined || parsed === null) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': answer.body.length }).end(answer.body);
  });
};
const bare = createServer(yardstick);
const bareTls = createHttpsServer({ ...tlsFiles, minVersion: 'TLSv1.3' }, yardstick);
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
await new Promise<void>((r) => bareTls.listen(0, '127.0.0.1', r));
const bareUrl = { http: `http://127.0.0.1:${(bare.address() as { port: number }).port}`, https: `https://127.0.0.1:${(bareTls.address() as { port: number }).port}` };

const load = (url: string, body: string | null, rate?: number) =>
  runLoad({ url, bodies: body === null ? null : [body], connections, seconds, warmup, ...(rate === undefined ? {} : { rate, precise: true }) });

/** GET over HTTPS, trusting the run's self-signed certificate. */
function httpsText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca: tlsFiles.cert }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A sample of a Signet's /metrics (0 when absent). */
async function sample(url: string, series: string): Promise<number> {
  const text = url.startsWith('https:') ? await httpsText(`${url}/metrics`) : await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const ANSWERED = 'signet_decision_requests_total{endpoint="/admission/validate",status="200"}';

/**
 * Waits (at most 60 s) until a Signet's admission record has written what the runs before left in
 * its buffer: a saturated run leaves tens of thousands, whose writing would otherwise fall inside
 * the next fixed-rate run, which measures the steady state (the record writing what that rate
 * brings, a batch at a time).
 */
async function recordDrained(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await sample(url, 'signet_admission_records_pending')) > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
}
const countRecords = async () => Number((await db.db.selectFrom('admission_records').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round3 = (x: number) => Number(x.toFixed(3));

interface AdmissionRun {
  rps: number;
  cpuUsPerRequest: number;
  p99AtRate: number;
}

/**
 * One saturated run of the AdmissionReview endpoint on `url`: requests/s, and this process's CPU
 * (where both Signets run; the load generator has its own) per request answered, measured until
 * the record's last batch of the run is written (1.5 s after the load ends, for both).
 */
async function admissionRun(url: string): Promise<AdmissionRun> {
  const path = endpoints['admission /admission/validate (Pod, 3 containers)']!.path;
  const [n0, cpu0] = [await sample(url, ANSWERED), process.cpuUsage()];
  const { rps } = await load(`${url}${path}`, admission);
  await new Promise((r) => setTimeout(r, 1_500));
  const cpu = process.cpuUsage(cpu0);
  const n = (await sample(url, ANSWERED)) - n0;
  await recordDrained(url);
  const { p99 } = await load(`${url}${path}`, admission, moderate);
  return { rps, cpuUsPerRequest: Math.round((cpu.user + cpu.system) / Math.max(1, n)), p99AtRate: p99 };
}

/**
 * The AdmissionReview endpoint saturated with the admission record on and off, alternating which
 * goes first, REPS times: on ÷ off per repetition for throughput and for CPU per request (the
 * steadier figure on a shared machine), their medians and spread, and what the record wrote and
 * dropped meanwhile.
 */
async function compareRecording() {
  const REPS = 5;
  const runs: Record<'on' | 'off', AdmissionRun[]> = { on: [], off: [] };
  const [rowsBefore, answeredBefore] = [await countRecords(), await sample(signet.http.url, ANSWERED)];
  for (let rep = 0; rep < REPS; rep++) {
    for (const which of rep % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      runs[which].push(await admissionRun((which === 'on' ? signet.http : unrecorded).url));
    }
  }
  const ratios = (f: (r: AdmissionRun) => number) => runs.on.map((r, i) => f(r) / f(runs.off[i]!)).sort((a, b) => a - b);
  const summary = (xs: number[]) => ({ perRepetition: xs.map(round3), median: round3(median(xs)), min: round3(xs[0]!), max: round3(xs.at(-1)!) });
  return {
    repetitions: REPS,
    on: runs.on,
    off: runs.off,
    /** Saturated requests/s, recording on ÷ off (sorted). */
    throughputRatio: summary(ratios((r) => r.rps)),
    /** CPU per request answered, recording on ÷ off (sorted). */
    cpuPerRequestRatio: summary(ratios((r) => r.cpuUsPerRequest)),
    /** p99 at the fixed moderate rate, recording on ÷ off (sorted). */
    p99AtRateRatio: summary(ratios((r) => r.p99AtRate)),
    /** Requests the recording Signet answered during the comparison (warm-ups included), and the records written and dropped. */
    answered: (await sample(signet.http.url, ANSWERED)) - answeredBefore,
    recordsWritten: (await countRecords()) - rowsBefore,
    recordsDropped: await sample(signet.http.url, 'signet_admission_records_dropped_total{cause="buffer_full"}'),
  };
}

/** One repetition of one endpoint on one protocol: Signet and its yardstick, back to back. */
interface Run {
  signet: { saturated: Load; atRate: Load };
  bare: { saturated: Load; atRate: Load };
}
const runs: Record<string, Record<string, Run[]>> = {};
for (let rep = 0; rep < (values['recording-only'] ? 0 : repetitions); rep++) {
  for (const proto of ['http', 'https'] as const) {
    for (const [name, e] of Object.entries(endpoints)) {
      process.stderr.write(`[bench-decisions] repetition ${rep + 1}/${repetitions} ${proto} ${name}\n`);
      // Alternate which goes first, so a drift in the machine's load does not favour one side.
      const order = rep % 2 === 0 ? (['signet', 'bare'] as const) : (['bare', 'signet'] as const);
      const run: Partial<Run> = {};
      for (const who of order) {
        const base = who === 'signet' ? signet[proto].url : bareUrl[proto];
        const saturated = await load(`${base}${e.path}`, e.body);
        if (who === 'signet') {
          await recordDrained(base);
        }
        run[who] = { saturated, atRate: await load(`${base}${e.path}`, e.body, moderate) };
      }
      ((runs[name] ??= {})[proto] ??= []).push(run as Run);
    }
  }
}
const recording = await compareRecording();
await signet.http.stop();
await signet.https.stop();
await unrecorded.stop();
bare.close();
bareTls.close();

/** Medians and spreads over the repetitions; ratios are taken within a repetition, then summarised. */
interface EndpointResult {
  requestBytes: number;
  responseBytes: number;
  signet: { saturatedRps: Spread; p50AtRate: Spread; p99AtRate: Spread };
  bare: { saturatedRps: Spread; p50AtRate: Spread; p99AtRate: Spread };
  /** Signet's saturated requests/s ÷ its yardstick's (goal ≥ 0.8). */
  rpsVsBare: Spread;
  /** Signet's p99 ÷ its yardstick's p99 at the same fixed rate (goal ≤ 1.5). */
  p99VsBare: Spread;
  errors: number;
}
const side = (rs: Run[], who: 'signet' | 'bare') => ({
  saturatedRps: spread(rs.map((r) => r[who].saturated.rps), 0),
  p50AtRate: spread(rs.map((r) => r[who].atRate.p50)),
  p99AtRate: spread(rs.map((r) => r[who].atRate.p99)),
});
const results: Record<string, Record<string, EndpointResult>> = {};
for (const [name, byProto] of Object.entries(runs)) {
  const e = endpoints[name]!;
  for (const [proto, rs] of Object.entries(byProto)) {
    (results[name] ??= {})[proto] = {
      requestBytes: e.body === null ? 0 : Buffer.byteLength(e.body),
      responseBytes: captured.get(e.path.split('?')[0]!)!.body.length,
      signet: side(rs, 'signet'),
      bare: side(rs, 'bare'),
      rpsVsBare: spread(rs.map((r) => r.signet.saturated.rps / r.bare.saturated.rps)),
      p99VsBare: spread(rs.map((r) => r.signet.atRate.p99 / r.bare.atRate.p99)),
      errors: rs.reduce((n, r) => n + r.signet.saturated.errors + r.signet.saturated.non2xx + r.signet.atRate.errors + r.signet.atRate.non2xx, 0),
    };
  }
}

// Memory per decision-table entry: synthetic decisions applied as ledger events, to a table bound
// to exactly N entries and built inside the measurement, so its preallocated slots (both LRUs', on
// and off the heap) count: heap and off-heap (typed arrays) after GC, divided by N.
const gc = (globalThis as { gc?: () => void }).gc;
const bytesPerEntry: Record<string, number | string> = {};
const inMemory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
for (const N of values['recording-only'] ? [] : [100_000, 1_000_000]) {
  if (gc === undefined) {
    bytesPerEntry[String(N)] = 'run with node --expose-gc';
    continue;
  }
  const verifiedAt = Array.from({ length: N }, (_, i) => new Date(1_700_000_000_000 + i).toISOString());
  const digests = Array.from({ length: N }, (_, i) => sha256Digest(`m-${i}`));
  gc();
  const before = inMemory();
  const table = new DecisionTable(db.db, policy, createLogger({ logLevel: 'silent' }), null, { maxEntries: N });
  for (let i = 0; i < N; i++) {
    table.apply({
      type: 'decision',
      registry: 'registry.bench',
      repository: `team/app${i % 1000}`,
      digest: digests[i]!,
      verifiedAt: verifiedAt[i]!,
      allowed: true,
      reason: 'verified',
      message: 'signed by alice@example.com',
      signers: [{ subject: 'alice@example.com', issuer: 'https://accounts.example.com' }],
      policyVersion: policy.version,
      rule: 'allow_with_verification.registry.bench.team/*',
      mode: 'enforce',
    });
  }
  gc();
  bytesPerEntry[String(N)] = Math.round((inMemory() - before) / N);
  // The inputs stay referenced until here, so what they take is in neither reading.
  if (table.size !== N || digests.length !== N || verifiedAt.length !== N) {
    throw new Error(`expected ${N} entries, got ${table.size}`);
  }
}
await db.drop();
await rm(tmp, { recursive: true, force: true });

console.log(
  JSON.stringify(
    { seconds, warmup, connections, moderateRate: moderate, repetitions, endpoints: results, admissionRecording: recording, decisionTableBytesPerEntry: bytesPerEntry },
    null,
    2,
  ),
);
