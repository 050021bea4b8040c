// Registries without webhooks: an admission lookup of an unknown image enqueues its indexing, for
// registries the operator allows only, and may wait a bounded time for the answer.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { startTestSignet, type TestSignet } from '../helpers/signet.ts';
import { createTestSigstore, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let tmp: string;

beforeAll(async () => {
  [db, sigstore] = await Promise.all([createTestDb(), createTestSigstore()]);
  registry = await startRegistry(); // no notifications: Signet hears nothing
  tmp = await mkdtemp(join(tmpdir(), 'signet-learn-'));
  await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
  await writeFile(
    join(tmp, 'policy.yaml'),
    `allow_with_verification:
  "${registry.host}":
    "**":
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
  other.example:
    "**":
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`,
  );
  signet = await startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
    SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
    SIGNET_INSECURE_REGISTRIES: registry.host,
    SIGNET_LEARN_REGISTRIES: registry.host,
    SIGNET_DECISION_WAIT_MS: '8000',
  });
});

afterAll(async () => {
  await registry?.stop();
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function ask(image: string) {
  const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(image)}` });
  return res.json<{ allowed: boolean; reason: string; digest: string | null }>();
}

describe('an image no webhook announced', () => {
  it('is indexed on first lookup, and the lookup waits for the answer', async () => {
    const repo = 'quiet/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [
      await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), {
        email: 'alice@example.com',
        issuer: 'https://accounts.example.com',
      }),
    ]);
    expect(await ask(`${registry.host}/${repo}:v1`)).toMatchObject({ allowed: true, reason: 'verified', digest: image.digest });
    // The tag is now in the ledger too.
    const tag = await db.db.selectFrom('tags').select('digest').where('name', '=', 'v1').executeTakeFirst();
    expect(tag?.digest).toBe(image.digest);
  });

  it('is not fetched from a registry outside SIGNET_LEARN_REGISTRIES', async () => {
    const before = await signet.queue!.getJobCounts();
    expect(await ask('other.example/team/app:v1')).toMatchObject({ allowed: false, reason: 'unknown' });
    expect(await signet.queue!.getJobCounts()).toEqual(before);
  });
});
