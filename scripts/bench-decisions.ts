// Decision endpoints against a yardstick measured in the same run: a bare node:http(s) server
// answering a constant — the ceiling of any Node endpoint on this machine. For the Gatekeeper
// batch (10 images), the native single lookup and a Kubernetes AdmissionReview (a Pod with 3
// containers), over HTTP and HTTPS (TLS 1.3): throughput at saturation (autocannon, closed loop),
// latency at half of that rate (autocannon, whole milliseconds) and at a fixed moderate rate
// (open loop, sub-millisecond timing), each from its own load process on loopback. Then the
// decision table's memory per entry at 100k and 1M entries. And the admission record's cost: the
// AdmissionReview endpoint saturated with recording on (the default) and off
// (SIGNET_ADMISSION_RECORD=off), alternating, 5 repetitions each, in the same run: throughput and
// CPU per request.
//
//   node --expose-gc scripts/bench-decisions.ts [--seconds 10] [--connections 10] [--quick] [--recording-only]
//
// Prints JSON. A measurement, not a test: absolute numbers depend on the machine; the ratios are
// what to compare.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
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
import { runLoad, type Load } from './lib/bench.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
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

await setupTemplate();

const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-'));
// A self-signed certificate for 127.0.0.1, for the HTTPS runs.
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: tmp, stdio: 'ignore' });
const tlsFiles = { cert: await readFile(join(tmp, 'tls.crt')), key: await readFile(join(tmp, 'tls.key')) };

// Yardstick: the ceiling of any Node endpoint here.
const constant = JSON.stringify({ ok: true });
const answer = (req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(constant));
};
const bare = createServer(answer);
const bareTls = createHttpsServer({ ...tlsFiles, minVersion: 'TLSv1.3' }, answer);
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
await new Promise<void>((r) => bareTls.listen(0, '127.0.0.1', r));
const bareUrl = { http: `http://127.0.0.1:${(bare.address() as { port: number }).port}/`, https: `https://127.0.0.1:${(bareTls.address() as { port: number }).port}/` };

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
const endpoints = {
  'gatekeeper /gatekeeper/validate (10 images)': { path: '/gatekeeper/validate', bodies: [gatekeeper] as string[] | null },
  'native GET /v1/decisions (1 image)': { path: `/v1/decisions?image=${encodeURIComponent(images[0]!)}`, bodies: null },
  'admission /admission/validate (Pod, 3 containers)': { path: '/admission/validate', bodies: [admission] },
};
const load = (url: string, bodies: string[] | null, rate?: number, precise = false) =>
  runLoad({ url, bodies, connections, seconds, warmup, ...(rate === undefined ? {} : { rate, precise }) });

/** A sample of a Signet's /metrics (0 when absent). */
async function sample(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const ANSWERED = 'signet_decision_requests_total{endpoint="/admission/validate",status="200"}';
const countRecords = async () => Number((await db.db.selectFrom('admission_records').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round3 = (x: number) => Number(x.toFixed(3));

/**
 * One saturated run of the AdmissionReview endpoint on `url`: requests/s, and this process's CPU
 * (where both Signets run; the load generator has its own) per request answered, measured until
 * the record's last batch of the run is written (1.5 s after the load ends, for both).
 */
async function admissionRun(url: string): Promise<{ rps: number; cpuUsPerRequest: number }> {
  const path = endpoints['admission /admission/validate (Pod, 3 containers)'].path;
  const [n0, cpu0] = [await sample(url, ANSWERED), process.cpuUsage()];
  const { rps } = await load(`${url}${path}`, [admission]);
  await new Promise((r) => setTimeout(r, 1_500));
  const cpu = process.cpuUsage(cpu0);
  const n = (await sample(url, ANSWERED)) - n0;
  return { rps, cpuUsPerRequest: Math.round((cpu.user + cpu.system) / Math.max(1, n)) };
}

/**
 * The AdmissionReview endpoint saturated with the admission record on and off, alternating which
 * goes first, REPS times: on ÷ off per repetition for throughput and for CPU per request (the
 * steadier figure on a shared machine), their medians and spread, and what the record wrote and
 * dropped meanwhile.
 */
async function compareRecording() {
  const REPS = 5;
  const runs: Record<'on' | 'off', { rps: number; cpuUsPerRequest: number }[]> = { on: [], off: [] };
  const [rowsBefore, answeredBefore] = [await countRecords(), await sample(signet.http.url, ANSWERED)];
  for (let rep = 0; rep < REPS; rep++) {
    for (const which of rep % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      runs[which].push(await admissionRun((which === 'on' ? signet.http : unrecorded).url));
    }
  }
  const ratios = (f: (r: { rps: number; cpuUsPerRequest: number }) => number) => runs.on.map((r, i) => f(r) / f(runs.off[i]!)).sort((a, b) => a - b);
  const summary = (xs: number[]) => ({ perRepetition: xs.map(round3), median: round3(median(xs)), min: round3(xs[0]!), max: round3(xs.at(-1)!) });
  return {
    repetitions: REPS,
    on: runs.on,
    off: runs.off,
    /** Saturated requests/s, recording on ÷ off (sorted). */
    throughputRatio: summary(ratios((r) => r.rps)),
    /** CPU per request answered, recording on ÷ off (sorted). */
    cpuPerRequestRatio: summary(ratios((r) => r.cpuUsPerRequest)),
    /** Requests the recording Signet answered during the comparison (warm-ups included), and the records written and dropped. */
    answered: (await sample(signet.http.url, ANSWERED)) - answeredBefore,
    recordsWritten: (await countRecords()) - rowsBefore,
    recordsDropped: await sample(signet.http.url, 'signet_admission_records_dropped_total{cause="buffer_full"}'),
  };
}

interface EndpointResult {
  saturated: Load;
  atHalfOfSaturation: Load;
  atModerateRate: Load;
  /** Saturated requests/s over the bare server's, same method and protocol. */
  rpsVsBare: number;
}
const results: Record<string, Record<string, EndpointResult>> = {};
const bareResults: Record<string, { GET: Load; POST: Load }> = {};
for (const proto of values['recording-only'] ? [] : (['http', 'https'] as const)) {
  const bareFigures = { GET: await load(bareUrl[proto], null), POST: await load(bareUrl[proto], ['{}']) };
  bareResults[proto] = bareFigures;
  for (const [name, e] of Object.entries(endpoints)) {
    const url = `${signet[proto].url}${e.path}`;
    const saturated = await load(url, e.bodies);
    (results[name] ??= {})[proto] = {
      saturated,
      atHalfOfSaturation: await load(url, e.bodies, Math.max(1, Math.round(saturated.rps / 2))),
      atModerateRate: await load(url, e.bodies, moderate, true),
      rpsVsBare: Number((saturated.rps / bareFigures[e.bodies === null ? 'GET' : 'POST'].rps).toFixed(3)),
    };
  }
}
const recording = await compareRecording();
await signet.http.stop();
await signet.https.stop();
await unrecorded.stop();
bare.close();
bareTls.close();

// Memory per decision-table entry: synthetic decisions applied as ledger events.
const gc = (globalThis as { gc?: () => void }).gc;
const bytesPerEntry: Record<string, number | string> = {};
for (const N of values['recording-only'] ? [] : [100_000, 1_000_000]) {
  if (gc === undefined) {
    bytesPerEntry[String(N)] = 'run with node --expose-gc';
    continue;
  }
  const table = new DecisionTable(db.db, policy, createLogger({ logLevel: 'silent' }));
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < N; i++) {
    table.apply({
      type: 'decision',
      registry: 'registry.bench',
      repository: `team/app${i % 1000}`,
      digest: sha256Digest(`m-${i}`),
      verifiedAt: new Date(1_700_000_000_000 + i).toISOString(),
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
  bytesPerEntry[String(N)] = Math.round((process.memoryUsage().heapUsed - before) / N);
  if (table.size !== N) {
    throw new Error(`expected ${N} entries, got ${table.size}`);
  }
}
await db.drop();
await rm(tmp, { recursive: true, force: true });

console.log(
  JSON.stringify(
    { seconds, connections, moderateRate: moderate, yardstick: { bare: bareResults }, endpoints: results, admissionRecording: recording, decisionTableBytesPerEntry: bytesPerEntry },
    null,
    2,
  ),
);
