// Backfill throughput on real parts: a local docker-registry (no notifications) holding N images,
// half of them cosign-signed with a key, an in-process Signet worker (SIGNET_WORKER_CONCURRENCY,
// default 16) on real Postgres and Redis, and `signet backfill <registry> --wait` run as the CLI
// runs it. Reports the crawl rate (tags/s) and the end-to-end rate (images indexed per second,
// crawl start to the last job done), then a second backfill (nothing to queue).
//
//   node scripts/bench-backfill.ts [images=500] [repositories=10]
//
// A measurement, not a test: numbers depend on the machine.
import { runBackfill } from '../test/helpers/cli.ts';
import { pushCosignSignatures } from '../test/helpers/cosign-push.ts';
import { createTestDb } from '../test/helpers/db.ts';
import { pushRandomImage } from '../test/helpers/oci-push.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { startTestSignet } from '../test/helpers/signet.ts';
import { generateTestKey, createTestSigstore, simpleSigningPayload } from '../test/signer/signer.ts';
import setupTemplate from '../test/global-setup.ts';

const images = Number(process.argv[2] ?? 500);
const repositories = Number(process.argv[3] ?? 10);

await setupTemplate();
const [db, registry, sigstore] = await Promise.all([createTestDb(), startRegistry(), createTestSigstore()]);
const key = generateTestKey();
const signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_INSECURE_REGISTRIES: registry.host, SIGNET_RECONCILE_INTERVAL: '0' });
try {
  const pushStarted = performance.now();
  // Repositories in parallel, one image at a time within each (distribution 2.8 can refuse
  // concurrent uploads of one blob into one repository).
  await Promise.all(
    Array.from({ length: repositories }, async (_, r) => {
      for (let i = r; i < images; i += repositories) {
        const repo = `bench/app${r}`;
        const image = await pushRandomImage(registry.url, repo, `v${i}`);
        if (i % 2 === 0) {
          const layer = await sigstore.signWithKey(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), key);
          await pushCosignSignatures(registry.url, repo, image.digest, [layer]);
        }
      }
    }),
  );
  process.stdout.write(`pushed ${images} images (${Math.ceil(images / 2)} signed) to ${repositories} repositories in ${((performance.now() - pushStarted) / 1000).toFixed(1)} s\n`);
  const cli = (...args: string[]) => runBackfill(signet, registry.host, registry.host, ...args);
  process.stdout.write((await cli('--wait')).stdout);
  process.stdout.write(`second run: ${(await cli()).stdout}`);
} finally {
  await registry.stop();
  await signet.stop();
  await db.drop();
}
