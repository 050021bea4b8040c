// `npm run demo`: Signet, a real registry and an offline Sigstore on this machine, a handful of
// signed and unsigned images pushed, and what Signet decided about each. Runs until Ctrl-C, then
// removes everything it made (the registry's storage, the demo database, its queue keys).
//
// Settings (environment): SIGNET_DEMO_PORT (Signet's port, default 8080; 0 picks a free one),
// SIGNET_DEMO_DATABASE (default signet_demo: dropped and created again, and dropped at the end),
// SIGNET_DEMO_PG (the PostgreSQL server, default postgres://postgres@127.0.0.1:5432), REDIS_URL
// (default redis://127.0.0.1:6379).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startSignet, type Signet } from '../services/app.ts';
import { loadConfig } from '../services/common/config.ts';
import type { Digest } from '../services/common/domain/digest.ts';
import { createLogger } from '../services/common/logger.ts';
import type { CosignLayer } from '../services/core/verification/cosign-layer.ts';
import { pushCosignAttestations, pushCosignSignatures } from '../test/helpers/cosign-push.ts';
import { freePort } from '../test/helpers/net.ts';
import { pushRandomImage } from '../test/helpers/oci-push.ts';
import { RECOMMENDED_IGNORE, startRegistry, type RunningRegistry } from '../test/helpers/registry.ts';
import { deleteQueueKeys } from '../test/helpers/signet.ts';
import { createTestSigstore, generateTestKey, inTotoStatement, simpleSigningPayload, type TestKey, type TestSigstore } from '../test/signer/signer.ts';
import { DEMO_ALICE, DEMO_BOB, DEMO_WORKFLOW, demoPolicy } from './lib/demo-policy.ts';

const PORT = Number(process.env.SIGNET_DEMO_PORT ?? '8080');
const DATABASE = process.env.SIGNET_DEMO_DATABASE ?? 'signet_demo';
const PG_SERVER = process.env.SIGNET_DEMO_PG ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SLSA_V1 = 'https://slsa.dev/provenance/v1';

interface DemoSigners {
  readonly sigstore: TestSigstore;
  /** A second, complete Sigstore that Signet does not trust: a rogue CA. */
  readonly rogue: TestSigstore;
  readonly key: TestKey;
}

/** One image the demo pushes: what it shows, and the signatures and attestations it gets. */
interface DemoImage {
  readonly repo: string;
  readonly tag: string;
  readonly what: string;
  sign(s: DemoSigners, ref: string, digest: Digest): Promise<{ signatures: CosignLayer[]; attestations: CosignLayer[] }>;
}

const only = (signatures: CosignLayer[]) => ({ signatures, attestations: [] });

const IMAGES: readonly DemoImage[] = [
  { repo: 'demo/keyless', tag: 'v1', what: 'keyless, signed by alice@example.com', sign: async (s, ref, d) => only([await s.sigstore.signKeyless(simpleSigningPayload(ref, d), DEMO_ALICE)]) },
  { repo: 'demo/release', tag: 'v1.0.0', what: "keyless, signed by acme/app's GitHub release workflow", sign: async (s, ref, d) => only([await s.sigstore.signKeyless(simpleSigningPayload(ref, d), DEMO_WORKFLOW)]) },
  { repo: 'demo/keyed', tag: 'v1', what: 'signed with a cosign key pair', sign: async (s, ref, d) => only([await s.sigstore.signWithKey(simpleSigningPayload(ref, d), s.key, { tlog: true })]) },
  { repo: 'demo/unsigned', tag: 'v1', what: 'not signed at all', sign: () => Promise.resolve(only([])) },
  {
    repo: 'demo/attested',
    tag: 'v1',
    what: 'signed by alice, with SLSA provenance from the release workflow',
    sign: async (s, ref, d) => ({
      signatures: [await s.sigstore.signKeyless(simpleSigningPayload(ref, d), DEMO_ALICE)],
      attestations: [await s.sigstore.attestKeyless(inTotoStatement(d, SLSA_V1, { runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } } }), DEMO_WORKFLOW)],
    }),
  },
  { repo: 'demo/rogue', tag: 'v1', what: "signed as alice, by a CA Signet does not trust", sign: async (s, ref, d) => only([await s.rogue.signKeyless(simpleSigningPayload(ref, d), DEMO_ALICE)]) },
  { repo: 'demo/keyless', tag: 'v2', what: 'signed by bob@example.com, whom the policy does not name (a drift alert)', sign: async (s, ref, d) => only([await s.sigstore.signKeyless(simpleSigningPayload(ref, d), DEMO_BOB)]) },
];

const GRAPHQL_QUERY = `query ($ref: String!) { image(ref: $ref) { digest status owners { subject } signatures { format status identity { subject } } attestations { predicateType status } decision { allowed reason } } }`;

async function onServer(fn: (c: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

const dropDatabase = () => onServer((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(DATABASE)} WITH (FORCE)`));

interface Running {
  readonly signet: Signet;
  readonly registry: RunningRegistry;
  readonly host: string;
  readonly databaseUrl: string;
  readonly queuePrefix: string;
  stop(): Promise<void>;
}

/** Signet (every role, the demo's policy and trusted root) and a registry that notifies it. */
async function start(tmp: string, signers: DemoSigners): Promise<Running> {
  const registryPort = await freePort();
  const host = `127.0.0.1:${registryPort}`;
  const token = randomBytes(24).toString('hex');
  const queuePrefix = `signet-demo-${randomBytes(4).toString('hex')}`;
  const databaseUrl = `${PG_SERVER}/${DATABASE}`;
  await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(signers.sigstore.trustedRoot));
  await writeFile(join(tmp, 'policy.yaml'), demoPolicy(host, signers.key.publicKeyPem));
  await dropDatabase();
  const config = loadConfig({
    PORT: String(PORT),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    SIGNET_WEBHOOK_TOKEN: token,
    SIGNET_QUEUE_PREFIX: queuePrefix,
    SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
    SIGNET_INSECURE_REGISTRIES: host,
    // Offline: the trust comes from the demo's own root, never from TUF.
    SIGNET_TUF_REFRESH: '0',
    // Only what goes wrong: the demo prints what happens.
    LOG_LEVEL: 'error',
  });
  const signet = await startSignet(config, createLogger(config, { role: 'demo' }));
  let registry: RunningRegistry;
  try {
    registry = await startRegistry({ port: registryPort, notifications: { url: `${signet.url}/webhooks/distribution`, token, ignore: RECOMMENDED_IGNORE } });
  } catch (err) {
    await stopSignet(signet);
    throw err;
  }
  return {
    signet,
    registry,
    host,
    databaseUrl,
    queuePrefix,
    async stop() {
      await registry.stop();
      await stopSignet(signet);
      await deleteQueueKeys(REDIS_URL, queuePrefix);
      await dropDatabase();
    },
  };
}

async function stopSignet(signet: Signet): Promise<void> {
  for (const step of signet.shutdownSteps) {
    await step.run().catch(() => undefined);
  }
}

async function push(r: Running, signers: DemoSigners, image: DemoImage): Promise<string> {
  const ref = `${r.host}/${image.repo}`;
  const pushed = await pushRandomImage(r.registry.url, image.repo, image.tag);
  const { signatures, attestations } = await image.sign(signers, ref, pushed.digest);
  if (signatures.length > 0) {
    await pushCosignSignatures(r.registry.url, image.repo, pushed.digest, signatures);
  }
  if (attestations.length > 0) {
    await pushCosignAttestations(r.registry.url, image.repo, pushed.digest, attestations);
  }
  return `${ref}:${image.tag}`;
}

interface Answer {
  readonly decision: { allowed: boolean; reason: string; message: string };
  readonly graphql: unknown;
}

/** Waits until Signet has indexed `ref` with `signatures` signatures and attestations, then reads both answers. */
async function answerFor(signet: Signet, ref: string, signatures: number): Promise<Answer> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: GRAPHQL_QUERY, variables: { ref } }) });
    const body = (await res.json()) as { data?: { image: { signatures: unknown[]; attestations: unknown[]; status: string; decision: { reason: string } | null } | null } };
    const image = body.data?.image;
    if (image !== null && image !== undefined && image.decision !== null && image.signatures.length + image.attestations.length >= signatures && image.status.toLowerCase() !== 'pending') {
      // The decision endpoints answer from memory, kept fresh over Redis: a moment behind the ledger.
      const decision = (await (await fetch(`${signet.url}/v1/decisions?image=${encodeURIComponent(ref)}`)).json()) as Answer['decision'];
      // A signed image is first decided when its manifest arrives, before its signature does.
      // GraphQL gives closed sets as enums (UNSIGNED); the decision endpoints as the ledger's words (unsigned).
      if (decision.reason === image.decision.reason.toLowerCase() && (signatures === 0 || decision.reason !== 'unsigned')) {
        return { decision, graphql: body.data };
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`Signet did not index ${ref} within 60 s (is the worker running? see the log above)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ownershipAlerts(signet: Signet): Promise<string[]> {
  const query = '{ ownershipChanges(kind: ADDED) { nodes { repository { name } identity { subject } previousOwners { subject } } } }';
  const res = await fetch(`${signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data: { ownershipChanges: { nodes: { repository: { name: string }; identity: { subject: string }; previousOwners: { subject: string }[] }[] } } };
  return body.data.ownershipChanges.nodes.map((n) => `${n.repository.name}: ${n.identity.subject} signed for the first time (owners before: ${n.previousOwners.map((o) => o.subject).join(', ')})`);
}

function nextSteps(r: Running): string {
  const env = `DATABASE_URL=${r.databaseUrl} REDIS_URL=${REDIS_URL} SIGNET_QUEUE_PREFIX=${r.queuePrefix}`;
  return [
    `Open the ownership page:  ${r.signet.url}/ui`,
    `Open GraphiQL:            ${r.signet.url}/graphql`,
    '',
    'Try next:',
    `  ${env} npm run signet -- who-owns ${r.host}/demo/keyless:v1`,
    `  curl -s '${r.signet.url}/v1/decisions?image=${r.host}/demo/rogue:v1'`,
    `  curl -s ${r.signet.url}/graphql -H 'content-type: application/json' -d '{"query":"{ ownershipChanges { nodes { kind repository { name } identity { subject } } } }"}'`,
  ].join('\n');
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'signet-demo-'));
  const [sigstore, rogue] = await Promise.all([createTestSigstore(), createTestSigstore()]);
  const signers: DemoSigners = { sigstore, rogue, key: generateTestKey() };
  let running: Running | undefined;
  let stopping: Promise<void> | undefined;
  const cleanUp = () => (stopping ??= (async () => {
    await running?.stop();
    await rm(tmp, { recursive: true, force: true });
  })());
  process.once('SIGINT', () => void cleanUp().then(() => process.exit(0)));
  process.once('SIGTERM', () => void cleanUp().then(() => process.exit(0)));
  try {
    running = await start(tmp, signers);
    process.stdout.write(`Signet ${running.signet.url}, registry ${running.host} (it notifies Signet of every push), an offline Sigstore, and this policy:\n\n${demoPolicy(running.host, signers.key.publicKeyPem)}\n`);
    for (const image of IMAGES) {
      const ref = await push(running, signers, image);
      const expected = image.repo === 'demo/unsigned' ? 0 : image.repo === 'demo/attested' ? 2 : 1;
      const { decision, graphql } = await answerFor(running.signet, ref, expected);
      process.stdout.write(`${ref} — ${image.what}\n  decision: ${decision.allowed ? 'ALLOW' : 'DENY'} ${decision.reason}: ${decision.message}\n  graphql:  ${JSON.stringify(graphql)}\n\n`);
    }
    process.stdout.write(`Drift alerts (ownershipChanges, ADDED):\n${(await ownershipAlerts(running.signet)).map((a) => `  ${a}`).join('\n')}\n\n`);
    process.stdout.write(`${nextSteps(running)}\n\n`);
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    await cleanUp();
    process.exit(1);
  }
  process.stdout.write('Everything keeps running until Ctrl-C, which removes it all.\n');
}

await main();
