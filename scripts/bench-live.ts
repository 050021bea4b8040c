// What Signet saves admission: the live-verification baseline that admission-time verifiers
// (cosign HTTP wrappers, Ratify, Connaisseur, cosign-gatekeeper-provider) pay per request —
// resolve the tag, fetch the `.sig` manifest and payload blobs from the registry, verify with
// sigstore — against Signet's precomputed answer for the same images, in the same run.
//
// Both answer `POST /verify {"image": …}` for N keyless-signed images in a real local
// docker-registry. The live verifier uses Signet's own registry client and verifier, with no
// cache, on loopback — a floor for the real thing, which also crosses a network and often calls
// Rekor or TUF. Load: autocannon in its own process, at a fixed moderate rate.
//
// With a network (`--rtt`, round-trip times in ms): the same live verifier reaches the registry
// through a TCP proxy that delays every chunk by half the round trip each way (and a new
// connection by one round trip), and does what go-containerregistry's remote (cosign, the
// cosign-based admission providers) does before reading: a `GET /v2/` ping and a token request to
// the registry's token service (a local one, behind the same delay). Connections are kept alive
// between requests, as one verifier process does. Defaults: 2 ms, a registry in the cluster's
// cloud region (inter-zone round trips are published as 1–2 ms), and 80 ms, a public registry
// across an ocean (published us-east ↔ eu-west round trips are 70–90 ms).
//
//   node scripts/bench-live.ts [--images 20] [--seconds 10] [--rate 20] [--rtt 2,80] [--reps 3]
//
// Prints JSON.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cosignSignatureTag, isDigest } from '../services/common/domain/digest.ts';
import { parseImageReference } from '../services/common/domain/image-ref.ts';
import { createLogger } from '../services/common/logger.ts';
import { createRegistryClient } from '../services/core/oci/client.ts';
import { loadTrustedRoot } from '../services/core/verification/trust.ts';
import { createSignatureVerifier } from '../services/core/verification/verifier.ts';
import setupTemplate from '../test/global-setup.ts';
import { pushCosignSignatures } from '../test/helpers/cosign-push.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { freePort } from '../test/helpers/net.ts';
import { pushRandomImage } from '../test/helpers/oci-push.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { startTcpProxy } from '../test/helpers/tcp-proxy.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN } from '../test/helpers/signet.ts';
import { createTestSigstore, simpleSigningPayload } from '../test/signer/signer.ts';
import { percentile, runLoad, type Load } from './lib/bench.ts';
import type { RegistryClient } from '../services/core/oci/client.ts';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '20' },
    rtt: { type: 'string', default: '2,80' },
    reps: { type: 'string', default: '3' },
  },
});
const rtts = values.rtt.split(',').filter((x) => x !== '').map(Number);
const reps = Number(values.reps);
const N = Number(values.images);
const seconds = Number(values.seconds);
const rate = Number(values.rate);

await setupTemplate();
const db = await createTestDb();
const sigstore = await createTestSigstore();
const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-live-'));
const rootPath = join(tmp, 'trusted_root.json');
await writeFile(rootPath, JSON.stringify(sigstore.trustedRoot));
const port = await freePort();
const host = `127.0.0.1:${port}`;
await writeFile(
  join(tmp, 'policy.yaml'),
  `allow_with_verification:\n  "${host}":\n    bench/*:\n      certificate-identity: bench@example.com\n      certificate-oidc-issuer: https://accounts.example.com\n`,
);
const signet = await startTestSignet({
  DATABASE_URL: db.url,
  SIGNET_TRUSTED_ROOT: rootPath,
  SIGNET_POLICY: join(tmp, 'policy.yaml'),
  SIGNET_INSECURE_REGISTRIES: host,
  LOG_LEVEL: 'warn',
});
const registry = await startRegistry({ port, notifications: { url: `${signet.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });

const images: string[] = [];
for (let i = 0; i < N; i++) {
  const repo = `bench/app${i % 5}`;
  const image = await pushRandomImage(registry.url, repo, `v${i}`);
  const layer = await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), {
    email: 'bench@example.com',
    issuer: 'https://accounts.example.com',
  });
  await pushCosignSignatures(registry.url, repo, image.digest, [layer]);
  images.push(`${registry.host}/${repo}:v${i}`);
}
for (const image of images) {
  await eventually(async () => {
    const res = await fetch(`${signet.url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image }) });
    return ((await res.json()) as { verified: boolean }).verified ? true : undefined;
  }, `${image} allowed by Signet`, 60_000);
}

// The live verifier: every request goes to the registry and through sigstore.
const log = createLogger({ logLevel: 'silent' });
const verifier = createSignatureVerifier(await loadTrustedRoot(rootPath), []);
function liveVerifier(client: RegistryClient, before: () => Promise<void>) {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        await before();
        const ref = parseImageReference((JSON.parse(body) as { image: string }).image);
        const digest = ref.digest ?? (await client.getManifest(ref.registry, ref.repository, ref.tag ?? 'latest')).digest;
        const sig = await client.getManifest(ref.registry, ref.repository, cosignSignatureTag(digest));
        let verified = false;
        if (sig.manifest.kind === 'image') {
          for (const layer of sig.manifest.layers) {
            if (!isDigest(layer.digest)) {
              continue;
            }
            const payload = await client.getBlob(ref.registry, ref.repository, layer.digest, 1 << 20);
            const verdict = verifier.verifyCosignLayer({ payload, annotations: layer.annotations ?? {} }, digest, {
              subject: 'bench@example.com',
              issuer: 'https://accounts.example.com',
            });
            verified ||= verdict.outcome === 'verified';
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ verified }));
      })().catch((err: unknown) => res.writeHead(500).end(String(err)));
    });
  });
}
async function listen(server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/verify`;
  const check = await fetch(url, { method: 'POST', body: JSON.stringify({ image: images[0] }) });
  if (!((await check.json()) as { verified: boolean }).verified) {
    throw new Error('the live verifier did not verify');
  }
  return url;
}
const live = liveVerifier(createRegistryClient({ insecureHosts: [host], timeoutMs: 15_000, retries: 0, maxManifestBytes: 4 << 20, log }), () => Promise.resolve());
const liveUrl = await listen(live);


function load(url: string): Promise<Load> {
  return runLoad({ url, bodies: images.map((image) => JSON.stringify({ image })), connections: 2, seconds, rate });
}
// autocannon reports whole milliseconds; Signet's answers are often under one. Time single
// sequential requests with a sub-millisecond clock as well.
async function sequential(url: string, n: number): Promise<{ p50: number; p99: number }> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const body = JSON.stringify({ image: images[i % images.length] });
    const start = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await res.arrayBuffer();
    t.push(performance.now() - start);
  }
  t.sort((a, b) => a - b);
  return { p50: Number(percentile(t, 50).toFixed(3)), p99: Number(percentile(t, 99).toFixed(3)) };
}

/** The live verifier through a network of round trip `rtt` ms, `reps` times against Signet in turn. */
async function overNetwork(rtt: number) {
  // The registry's token service: a token for any scope, as an anonymous pull gets one.
  const tokens = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t","expires_in":300}'));
  await new Promise<void>((r) => tokens.listen(0, '127.0.0.1', r));
  const registryProxy = await startTcpProxy('127.0.0.1', port, { oneWayDelayMs: rtt / 2 });
  const tokenProxy = await startTcpProxy('127.0.0.1', (tokens.address() as { port: number }).port, { oneWayDelayMs: rtt / 2 });
  const far = `http://127.0.0.1:${registryProxy.port}`;
  const client = createRegistryClient({ insecureHosts: [host], endpoints: { [host]: far }, timeoutMs: 15_000, retries: 0, maxManifestBytes: 4 << 20, log });
  const server = liveVerifier(client, async () => {
    await (await fetch(`${far}/v2/`)).arrayBuffer();
    await (await fetch(`http://127.0.0.1:${tokenProxy.port}/token?service=registry&scope=repository:bench/app:pull`)).arrayBuffer();
  });
  const url = await listen(server);
  // At least ~5 round trips a request: as many requests as fit in ~10 s, 10 at least.
  const n = Math.max(10, Math.min(200, Math.floor(10_000 / (rtt * 6))));
  const runs = [];
  for (let i = 0; i < reps; i++) {
    const s = await sequential(`${signet.url}/verify`, 2_000);
    const l = await sequential(url, n);
    runs.push({ signet: s, live: l, ratio: l.p50 / s.p50 });
  }
  server.close();
  tokens.close();
  await registryProxy.close();
  await tokenProxy.close();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratios = runs.map((r) => r.ratio);
  return {
    rttMs: rtt,
    requests: n,
    reps,
    liveMs: { p50: med(runs.map((r) => r.live.p50)), p99: med(runs.map((r) => r.live.p99)) },
    signetMs: { p50: med(runs.map((r) => r.signet.p50)), p99: med(runs.map((r) => r.signet.p99)) },
    liveOverSignet: { median: Number(med(ratios).toFixed(0)), min: Number(Math.min(...ratios).toFixed(0)), max: Number(Math.max(...ratios).toFixed(0)) },
  };
}

const signetLoad = await load(`${signet.url}/verify`);
const liveLoad = await load(liveUrl);
const signetSeq = await sequential(`${signet.url}/verify`, 2_000);
const liveSeq = await sequential(liveUrl, 200);
const network = [];
for (const rtt of rtts) {
  network.push(await overNetwork(rtt));
}
console.log(
  JSON.stringify(
    {
      images: N,
      ratePerSecond: rate,
      seconds,
      atRate: { signet: signetLoad, live: liveLoad },
      sequentialMs: { signet: signetSeq, live: liveSeq },
      liveOverSignet: {
        p50: Number((liveSeq.p50 / signetSeq.p50).toFixed(1)),
        p99: Number((liveSeq.p99 / signetSeq.p99).toFixed(1)),
      },
      network,
    },
    null,
    2,
  ),
);
live.close();
await registry.stop();
await signet.stop();
await db.drop();
await rm(tmp, { recursive: true, force: true });
