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
//   node scripts/bench-live.ts [--images 20] [--seconds 10] [--rate 20]
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
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN } from '../test/helpers/signet.ts';
import { createTestSigstore, simpleSigningPayload } from '../test/signer/signer.ts';
import { percentile, runLoad, type Load } from './lib/bench.ts';

const { values } = parseArgs({
  options: { images: { type: 'string', default: '20' }, seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '20' } },
});
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
const client = createRegistryClient({ insecureHosts: [host], timeoutMs: 15_000, retries: 0, maxManifestBytes: 4 << 20, log });
const verifier = createSignatureVerifier(await loadTrustedRoot(rootPath), []);
const live = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    void (async () => {
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
await new Promise<void>((r) => live.listen(0, '127.0.0.1', r));
const liveUrl = `http://127.0.0.1:${(live.address() as { port: number }).port}/verify`;
const check = await fetch(liveUrl, { method: 'POST', body: JSON.stringify({ image: images[0] }) });
if (!((await check.json()) as { verified: boolean }).verified) {
  throw new Error('the live verifier did not verify');
}

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

const signetLoad = await load(`${signet.url}/verify`);
const liveLoad = await load(liveUrl);
const signetSeq = await sequential(`${signet.url}/verify`, 2_000);
const liveSeq = await sequential(liveUrl, 200);
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
