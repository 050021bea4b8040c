// Push-to-ledger latency on real parts: a local docker-registry notifying an in-process Signet
// (all roles), real Postgres and Redis. For each of N images: push the image, sign it keyless with
// the test PKI, push the cosign signature; the clock starts when the registry acknowledges the
// signature push (201) and stops when the ledger shows the image verified.
//
//   node scripts/bench-push-latency.ts [count=200] [pushes-per-second=20]
//
// Prints p50/p90/p99/max. A measurement, not a test: numbers depend on the machine.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../services/common/domain/digest.ts';
import { pushCosignSignatures } from '../test/helpers/cosign-push.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { freePort } from '../test/helpers/net.ts';
import { pushRandomImage } from '../test/helpers/oci-push.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { startTestSignet, TEST_WEBHOOK_TOKEN } from '../test/helpers/signet.ts';
import { createTestSigstore, simpleSigningPayload } from '../test/signer/signer.ts';
import setupTemplate from '../test/global-setup.ts';

const count = Number(process.argv[2] ?? 200);
const rate = Number(process.argv[3] ?? 20);

await setupTemplate();
const db = await createTestDb();
const sigstore = await createTestSigstore();
const tmp = await mkdtemp(join(tmpdir(), 'signet-bench-'));
await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
const port = await freePort();
const signet = await startTestSignet({
  DATABASE_URL: db.url,
  SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
  SIGNET_INSECURE_REGISTRIES: `127.0.0.1:${port}`,
});
const registry = await startRegistry({ port, notifications: { url: `${signet.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });

const pending = new Map<Digest, number>();
const latencies: number[] = [];
let done = false;
let giveUp = false;

// One poller for every outstanding image: a 2 ms loop over the manifests still pending.
const poller = (async () => {
  while ((!done || pending.size > 0) && !giveUp) {
    if (pending.size > 0) {
      const rows = await db.db
        .selectFrom('manifests')
        .select('digest')
        .where('digest', 'in', [...pending.keys()])
        .where('status', '=', 'verified')
        .execute();
      const now = performance.now();
      for (const { digest } of rows) {
        latencies.push(now - pending.get(digest as Digest)!);
        pending.delete(digest as Digest);
      }
    }
    await sleep(2);
  }
})();

const interval = 1000 / rate;
const started = performance.now();
const pushes: Promise<void>[] = [];
for (let i = 0; i < count; i++) {
  const due = started + i * interval;
  const wait = due - performance.now();
  if (wait > 0) {
    await sleep(wait);
  }
  pushes.push(
    (async () => {
      const repo = `bench/app${i % 10}`;
      const image = await pushRandomImage(registry.url, repo, null);
      const layer = await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), {
        email: 'bench@example.com',
        issuer: 'https://accounts.example.com',
      });
      await pushCosignSignatures(registry.url, repo, image.digest, [layer]);
      pending.set(image.digest, performance.now());
    })(),
  );
}
await Promise.all(pushes);
done = true;
const deadline = Date.now() + 60_000;
while (pending.size > 0 && Date.now() < deadline) {
  await sleep(50);
}
giveUp = true;
await poller;
if (pending.size > 0) {
  console.error(`${pending.size} image(s) never reached the ledger as verified within 60 s:`);
  for (const digest of [...pending.keys()].slice(0, 5)) {
    const row = await db.db.selectFrom('manifests').select(['status', 'status_reason']).where('digest', '=', digest).executeTakeFirst();
    console.error(`  ${digest}: ${row === undefined ? 'not in the ledger' : `${row.status} ${row.status_reason ?? ''}`}`);
  }
  const failed = await signet.queue!.getFailed(0, 5);
  for (const job of failed) {
    console.error(`  failed job ${job.id}: ${job.failedReason}`);
  }
  console.error(`  job counts: ${JSON.stringify(await signet.queue!.getJobCounts())}`);
}
const elapsed = (performance.now() - started) / 1000;

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!.toFixed(1);
console.log(
  JSON.stringify(
    {
      images: count,
      offeredRate: rate,
      completed: latencies.length,
      seconds: Number(elapsed.toFixed(1)),
      pushToLedgerMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: latencies.at(-1)?.toFixed(1) },
    },
    null,
    2,
  ),
);

await registry.stop();
await signet.stop();
await db.drop();
await rm(tmp, { recursive: true, force: true });
