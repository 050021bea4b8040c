// The ingest benchmarks' machinery (bench-ingest, bench-scale): a fresh ledger database, a test
// Sigstore and signing key, a policy trusting them for a local docker-registry, and the steps of
// a run — push and sign images untimed, push their signatures, wait until each is allowed.
//
// Order of use: `createIngestRig()` (the registry's port, policy and trust files), start Signet
// with `rig.env`, then `rig.startRegistry(notificationUrl)`, then prepare, push and observe.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../../services/common/domain/digest.ts';
import type { CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import setupTemplate from '../../test/global-setup.ts';
import { pushCosignSignatures } from '../../test/helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../../test/helpers/db.ts';
import { freePort } from '../../test/helpers/net.ts';
import { pushRandomImage } from '../../test/helpers/oci-push.ts';
import { RECOMMENDED_IGNORE, startRegistry, type RunningRegistry } from '../../test/helpers/registry.ts';
import { TEST_WEBHOOK_TOKEN } from '../../test/helpers/signet.ts';
import { createTestSigstore, generateTestKey, keylessAndKeyPolicy, simpleSigningPayload } from '../../test/signer/signer.ts';
import { percentile } from './bench.ts';

const SIGNER = { email: 'bench@example.com', issuer: 'https://accounts.example.com' };

/** An image pushed and signed, its signature not pushed yet. */
export interface Prepared {
  readonly repo: string;
  readonly digest: Digest;
  readonly layer: CosignLayer;
}

export interface IngestRig {
  readonly db: TestDb;
  /** `127.0.0.1:port` of the registry (started by {@link IngestRig.startRegistry}). */
  readonly host: string;
  /** What Signet needs to verify this rig's signatures from this registry (database, trust, policy). */
  readonly env: Record<string, string>;
  /** Starts the registry, notifying `url` (Signet's `/webhooks/distribution`) with the test token. */
  startRegistry(url: string): Promise<RunningRegistry>;
  /** Pushes image `i` (every other one signed keyless, the rest with a key and a Rekor entry) and signs it, without pushing the signature. */
  prepare(i: number): Promise<Prepared>;
  /** Pushes a prepared signature; resolves to the registry's acknowledgement time (performance.now() and wall clock). */
  pushSignature(p: Prepared): Promise<{ digest: Digest; ackAt: number; ackWall: number }>;
  /**
   * Polls the ledger until every digest in `pending` (added to while pushing, with its ack time)
   * is allowed and `untilDone()` says no more will come; returns the latency (ms) per digest.
   */
  observe(pending: Map<Digest, number>, untilDone: () => boolean, timeoutMs?: number): Promise<Map<Digest, number>>;
  /** Stops the registry and drops the database. */
  stop(): Promise<void>;
}

export async function createIngestRig(): Promise<IngestRig> {
  await setupTemplate();
  const db = await createTestDb();
  const sigstore = await createTestSigstore();
  const key = generateTestKey();
  const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-'));
  await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  await writeFile(join(tmp, 'policy.yaml'), keylessAndKeyPolicy(host, SIGNER, key));
  let registry: RunningRegistry | null = null;
  const running = () => {
    if (registry === null) {
      throw new Error('the registry is not started: call startRegistry first');
    }
    return registry;
  };
  return {
    db,
    host,
    env: {
      DATABASE_URL: db.url,
      SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
      SIGNET_TUF_REFRESH: '0',
      SIGNET_POLICY: join(tmp, 'policy.yaml'),
      SIGNET_INSECURE_REGISTRIES: host,
    },
    async startRegistry(url) {
      // As the README configures distribution: manifest events only.
      registry = await startRegistry({ port, notifications: { url, token: TEST_WEBHOOK_TOKEN, ignore: RECOMMENDED_IGNORE } });
      return registry;
    },
    async prepare(i) {
      const keyless = i % 2 === 0;
      const repo = `${keyless ? 'keyless' : 'keyed'}/app${i % 10}`;
      const image = await pushRandomImage(running().url, repo, null);
      const payload = simpleSigningPayload(`${running().host}/${repo}`, image.digest);
      const layer = keyless ? await sigstore.signKeyless(payload, SIGNER) : await sigstore.signWithKey(payload, key, { tlog: true });
      return { repo, digest: image.digest, layer };
    },
    async pushSignature(p) {
      await pushCosignSignatures(running().url, p.repo, p.digest, [p.layer]);
      return { digest: p.digest, ackAt: performance.now(), ackWall: Date.now() };
    },
    async observe(pending, untilDone, timeoutMs = 120_000) {
      const seen = new Map<Digest, number>();
      const deadline = Date.now() + timeoutMs;
      while ((!untilDone() || pending.size > 0) && Date.now() < deadline) {
        if (pending.size > 0) {
          const rows = await db.db
            .selectFrom('decisions as d')
            .innerJoin('manifests as m', 'm.id', 'd.manifest_id')
            .select('m.digest')
            .where('m.digest', 'in', [...pending.keys()])
            .where('d.allowed', '=', true)
            .execute();
          const now = performance.now();
          for (const { digest: d } of rows) {
            const ack = pending.get(d);
            if (ack !== undefined) {
              seen.set(d, now - ack);
              pending.delete(d);
            }
          }
        }
        await sleep(2);
      }
      if (pending.size > 0) {
        console.error(`${pending.size} image(s) never became allowed within ${timeoutMs / 1000} s`);
      }
      return seen;
    },
    async stop() {
      await registry?.stop();
      await db.drop();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** p50, p90, p99 and max of latencies (ms), to a tenth. */
export function latencySummary(xs: readonly number[]): { p50: number; p90: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: Number(percentile(s, 50).toFixed(1)), p90: Number(percentile(s, 90).toFixed(1)), p99: Number(percentile(s, 99).toFixed(1)), max: Number((s.at(-1) ?? NaN).toFixed(1)) };
}
