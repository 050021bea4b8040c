// Registries without webhooks: an admission lookup of an unknown image enqueues its indexing, for
// registries the operator allows only, and may wait a bounded time for the answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import type { TestSignet } from '../helpers/signet.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    name: 'learn',
    // No notifications: Signet hears nothing.
    notify: false,
    policy: (host) => `allow_with_verification:
  "${host}":
    "**":
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
  other.example:
    "**":
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`,
    env: ({ host }) => ({ SIGNET_LEARN_REGISTRIES: host, SIGNET_DECISION_WAIT_MS: '8000' }),
  });
  ({ db, sigstore, registry, signet } = stack);
});

afterAll(async () => {
  await stack?.stop();
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
