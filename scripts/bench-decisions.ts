// Decision-endpoint throughput and latency against a yardstick measured in the same run: a bare
// node:http server answering a constant. Load comes from autocannon in a separate process, on
// loopback, for both. Then the decision table's memory per entry at 1M entries.
//
//   node --expose-gc scripts/bench-decisions.ts [seconds=10] [connections=10]
//
// Prints JSON. A measurement, not a test: absolute numbers depend on the machine; the ratios are
// what to compare.
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecisionTable } from '../services/api/decision-table.ts';
import { sha256Digest } from '../services/common/domain/digest.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { startTestSignet } from '../test/helpers/signet.ts';
import setupTemplate from '../test/global-setup.ts';

const seconds = Number(process.argv[2] ?? 10);
const connections = Number(process.argv[3] ?? 10);
const AUTOCANNON = fileURLToPath(new URL('../node_modules/.bin/autocannon', import.meta.url));
const run = promisify(execFile);

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, body: string | null, rate?: number): Promise<Result> {
  const args = ['-j', '-n', '-c', String(connections), '-d', String(seconds), '-W', '[', '-c', '2', '-d', '2', ']'];
  if (body !== null) {
    args.push('-m', 'POST', '-H', 'content-type=application/json', '-b', body);
  }
  if (rate !== undefined) {
    args.push('-R', String(rate));
  }
  const { stdout } = await run(AUTOCANNON, [...args, url], { maxBuffer: 64 << 20 });
  // With a warm-up, autocannon prints the warm-up's JSON line first; the measurement is the last.
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
  return { rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

await setupTemplate();

// Yardstick: the ceiling of any Node endpoint here.
const constant = JSON.stringify({ ok: true });
const bare = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(constant));
});
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}/`;

// Signet (api role) with 10 images in its ledger, each decided under the policy.
const db = await createTestDb();
const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-'));
const policyText = `allow_with_verification:
  registry.bench:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;
await writeFile(join(tmp, 'policy.yaml'), policyText);
const policy = parsePolicy(policyText);
const { id: registryId } = await db.db.insertInto('registries').values({ host: 'registry.bench' }).returning('id').executeTakeFirstOrThrow();
const { id: repositoryId } = await db.db.insertInto('repositories').values({ registry_id: registryId, name: 'team/app' }).returning('id').executeTakeFirstOrThrow();
const images: string[] = [];
for (let i = 0; i < 10; i++) {
  const digest = sha256Digest(`image-${i}`);
  const { id } = await db.db
    .insertInto('manifests')
    .values({ repository_id: repositoryId, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', size: 1, status: 'verified' })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db.db
    .insertInto('decisions')
    .values({
      manifest_id: id,
      policy_version: policy.version,
      allowed: true,
      reason: 'verified',
      message: 'signed by alice@example.com',
      signers: JSON.stringify([{ subject: 'alice@example.com', issuer: 'https://accounts.example.com' }]),
      verified_at: new Date(),
    })
    .execute();
  images.push(`registry.bench/team/app@${digest}`);
}
const signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml'), LOG_LEVEL: 'warn' });

const gatekeeperBody = JSON.stringify({ apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: images } });
const results: Record<string, Result> = {};
results.bare = await load(bareUrl, '{}');
results.gatekeeper10 = await load(`${signet.url}/gatekeeper/validate`, gatekeeperBody);
results.decisions1 = await load(`${signet.url}/v1/decisions?image=${encodeURIComponent(images[0]!)}`, null);
results.gatekeeper10AtHalf = await load(`${signet.url}/gatekeeper/validate`, gatekeeperBody, Math.round(results.gatekeeper10.rps / 2));
await signet.stop();
bare.close();

// Memory per decision-table entry: 1M synthetic decisions applied as ledger events.
const gc = (globalThis as { gc?: () => void }).gc;
let bytesPerEntry: number | null = null;
if (gc !== undefined) {
  const table = new DecisionTable(db.db, policy, createLogger({ logLevel: 'silent' }));
  gc();
  const before = process.memoryUsage().heapUsed;
  const N = 1_000_000;
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
    });
  }
  gc();
  bytesPerEntry = Math.round((process.memoryUsage().heapUsed - before) / N);
  if (table.size !== N) {
    throw new Error(`expected ${N} entries, got ${table.size}`);
  }
}
await db.drop();
await rm(tmp, { recursive: true, force: true });

console.log(
  JSON.stringify(
    {
      seconds,
      connections,
      results,
      ratios: {
        gatekeeper10RpsVsBare: Number((results.gatekeeper10.rps / results.bare.rps).toFixed(3)),
        decisions1RpsVsBare: Number((results.decisions1.rps / results.bare.rps).toFixed(3)),
      },
      decisionTableBytesPerEntryAt1M: bytesPerEntry ?? 'run with node --expose-gc',
    },
    null,
    2,
  ),
);
