// A withdrawn signature stops allowing. Teams revoke after a key compromise or a bad release by
// deleting the `.sig` manifest (`cosign clean`) or replacing it; cosign verify, policy-controller
// and Kyverno deny from that moment, and so must Signet — within seconds when the registry
// notifies it, at the next crawl when it does not. End to end against a real docker-registry
// (CNCF distribution 2.8, deletes enabled) and the test Sigstore.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import type { CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import { runBackfill } from '../helpers/cli.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushIndex, pushRandomImage } from '../helpers/oci-push.ts';
import { eventually } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { createTestSigstore, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
/** How long a notified withdrawal may take to turn into a denial. */
const NOTIFIED_BOUND_MS = 10_000;

interface Answer {
  allowed: boolean;
  reason: string;
  message: string;
}

interface GraphqlSignature {
  status: string;
  sourceDigest: string;
  withdrawnAt: string | null;
  withdrawnBy: string | null;
  identity: { subject: string } | null;
}

async function decision(stack: TestStack, image: string): Promise<Answer> {
  const res = await stack.signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(image)}` });
  expect(res.statusCode).toBe(200);
  return res.json<Answer>();
}

function until(stack: TestStack, image: string, allowed: boolean, timeoutMs = 20_000): Promise<Answer> {
  return eventually(async () => {
    const a = await decision(stack, image);
    return a.allowed === allowed ? a : undefined;
  }, `${image} ${allowed ? 'allowed' : 'denied'}`, timeoutMs);
}

async function graphqlImage(stack: TestStack, ref: string) {
  const res = await fetch(`${stack.signet.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: `query($ref: String!) { image(ref: $ref) {
        status owners { subject }
        signatures { status sourceDigest withdrawnAt withdrawnBy identity { subject } }
        decision { allowed reason }
      } }`,
      variables: { ref },
    }),
  });
  const body = (await res.json()) as { data?: { image: { status: string; owners: { subject: string }[]; signatures: GraphqlSignature[]; decision: Answer | null } | null }; errors?: unknown };
  expect(body.errors).toBeUndefined();
  return body.data!.image!;
}

/** Waits until the stack's worker has finished a `recheck` of `digest` (queued by a delete notification) and has nothing left to do. */
async function recheckDone(stack: TestStack, digest: Digest): Promise<void> {
  const queue = stack.signet.queue!;
  await eventually(async () => {
    const done = await queue.getJobs(['completed']);
    const rechecked = done.some((j) => {
      const data = j.data as { digest: string; trigger: { kind: string } };
      return data.digest === digest && data.trigger.kind === 'recheck';
    });
    const pending = Object.values(await queue.getJobCounts('waiting', 'active', 'delayed')).some((n) => n > 0);
    return rechecked && !pending ? true : undefined;
  }, `a finished recheck of ${digest}`);
}

async function deleteManifest(registryUrl: string, repo: string, digest: Digest): Promise<void> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
  await res.body?.cancel();
  expect(res.status).toBe(202);
}

describe('with registry notifications', () => {
  let stack: TestStack;
  let rogue: TestSigstore;

  beforeAll(async () => {
    stack = await startTestStack({ name: 'withdrawn', policy: (host) => policyAllowing(host, ALICE) });
    rogue = await createTestSigstore();
  });

  afterAll(async () => {
    await stack?.stop();
  });

  async function signedImage(repo: string): Promise<{ digest: Digest; sig: Digest; layer: CosignLayer; ref: string }> {
    const image = await pushRandomImage(stack.registry.url, repo, 'v1');
    const layer = await stack.sigstore.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, image.digest), ALICE);
    const sig = await pushCosignSignatures(stack.registry.url, repo, image.digest, [layer]);
    const ref = `${stack.host}/${repo}:v1`;
    await until(stack, ref, true);
    return { digest: image.digest, sig, layer, ref };
  }

  it('(a) denies once the .sig manifest is deleted, and allows again when the same signature is pushed back', async () => {
    const repo = 'sec/deleted';
    const { digest, sig, layer, ref } = await signedImage(repo);

    const deletedAt = Date.now();
    await deleteManifest(stack.registry.url, repo, sig);
    const denied = await until(stack, ref, false, NOTIFIED_BOUND_MS);
    expect(Date.now() - deletedAt).toBeLessThan(NOTIFIED_BOUND_MS);
    console.info(`.sig manifest deleted → denied in ${Date.now() - deletedAt} ms`);
    expect(denied).toMatchObject({ allowed: false, reason: 'unsigned' });
    expect(denied.message).toMatch(/withdrawn/);

    // Kept, and shown for what it is: when and how it was withdrawn; it owns nothing any more.
    const shown = await graphqlImage(stack, `${stack.host}/${repo}@${digest}`);
    expect(shown.status).toBe('UNSIGNED');
    expect(shown.owners).toEqual([]);
    expect(shown.decision).toMatchObject({ allowed: false, reason: 'UNSIGNED' });
    expect(shown.signatures).toEqual([
      { status: 'VERIFIED', sourceDigest: sig, withdrawnAt: expect.any(String), withdrawnBy: 'DELETE', identity: { subject: ALICE.email } },
    ]);
    expect(Date.parse(shown.signatures[0]!.withdrawnAt!)).toBeGreaterThanOrEqual(deletedAt - 1_000);

    // The same signature pushed again counts again.
    expect(await pushCosignSignatures(stack.registry.url, repo, digest, [layer])).toBe(sig);
    await until(stack, ref, true, NOTIFIED_BOUND_MS);
    const back = await graphqlImage(stack, `${stack.host}/${repo}@${digest}`);
    expect(back.signatures).toEqual([expect.objectContaining({ withdrawnAt: null, withdrawnBy: null })]);
    expect(back.owners).toEqual([{ subject: ALICE.email }]);
  });

  it('(b) denies once the .sig tag is overwritten by a manifest without the trusted signer', async () => {
    const repo = 'sec/replaced';
    const { digest, sig, ref } = await signedImage(repo);

    const replacedAt = Date.now();
    const forged = await pushCosignSignatures(stack.registry.url, repo, digest, [
      await rogue.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, digest), ALICE),
    ]);
    const denied = await until(stack, ref, false, NOTIFIED_BOUND_MS);
    expect(Date.now() - replacedAt).toBeLessThan(NOTIFIED_BOUND_MS);
    console.info(`.sig tag overwritten → denied in ${Date.now() - replacedAt} ms`);
    expect(denied.reason).toBe('untrusted_root');

    const shown = await graphqlImage(stack, `${stack.host}/${repo}@${digest}`);
    expect(shown.owners).toEqual([]);
    expect(shown.signatures).toEqual([
      expect.objectContaining({ status: 'VERIFIED', sourceDigest: sig, withdrawnBy: 'REINDEX', withdrawnAt: expect.any(String) }),
      expect.objectContaining({ status: 'UNTRUSTED_ROOT', sourceDigest: forged, withdrawnAt: null, withdrawnBy: null }),
    ]);
  });

  it('a partial look (an unusable signature source) withdraws nothing; a complete one does', async () => {
    const repo = 'sec/partial';
    const { digest, sig, ref } = await signedImage(repo);
    // An index under the .att tag cannot be read as attestations: any look is partial from now on.
    const hostile = await pushIndex(stack.registry.url, repo, `sha256-${digest.slice(7)}.att`);
    await deleteManifest(stack.registry.url, repo, sig);
    await recheckDone(stack, digest);
    expect(await decision(stack, ref)).toMatchObject({ allowed: true });
    expect((await graphqlImage(stack, `${stack.host}/${repo}@${digest}`)).signatures).toEqual([expect.objectContaining({ sourceDigest: sig, withdrawnAt: null })]);

    // With the unusable source deleted too (distribution also reports its tag deleted), the next
    // look is complete and withdraws.
    await deleteManifest(stack.registry.url, repo, hostile.digest);
    await until(stack, ref, false, NOTIFIED_BOUND_MS);
    expect((await graphqlImage(stack, `${stack.host}/${repo}@${digest}`)).signatures).toEqual([expect.objectContaining({ sourceDigest: sig, withdrawnBy: 'DELETE' })]);
  });
});

describe('without registry notifications', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ name: 'withdrawn-crawl', notify: false, policy: (host) => policyAllowing(host, ALICE) });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('(c) a crawl (signet backfill) finds the deleted .sig manifest and denies', async () => {
    const repo = 'sec/crawled';
    const ref = `${stack.host}/${repo}:v1`;
    const image = await pushRandomImage(stack.registry.url, repo, 'v1');
    const layer = await stack.sigstore.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, image.digest), ALICE);
    const sig = await pushCosignSignatures(stack.registry.url, repo, image.digest, [layer]);
    await runBackfill(stack.signet, stack.host, `${stack.host}/${repo}`, '--wait');
    await until(stack, ref, true);

    await deleteManifest(stack.registry.url, repo, sig);
    // Nobody told Signet: the decision stands until a crawl looks.
    expect(await decision(stack, ref)).toMatchObject({ allowed: true });
    const { stdout } = await runBackfill(stack.signet, stack.host, `${stack.host}/${repo}`, '--wait');
    expect(stdout).toMatch(/: 1 queued/);
    await until(stack, ref, false, 5_000);

    const shown = await graphqlImage(stack, `${stack.host}/${repo}@${image.digest}`);
    expect(shown.signatures).toEqual([expect.objectContaining({ sourceDigest: sig, withdrawnBy: 'CRAWL', withdrawnAt: expect.any(String) })]);

    // A crawl of an unchanged registry queues nothing more.
    const again = await runBackfill(stack.signet, stack.host, `${stack.host}/${repo}`, '--wait');
    expect(again.stdout).toMatch(/: 0 queued/);

    // The same signature pushed back counts again; the .sig tag overwritten without the trusted
    // signer withdraws it again — each found by a crawl alone.
    await pushCosignSignatures(stack.registry.url, repo, image.digest, [layer]);
    await runBackfill(stack.signet, stack.host, `${stack.host}/${repo}`, '--wait');
    await until(stack, ref, true, 5_000);
    const rogue = await createTestSigstore();
    await pushCosignSignatures(stack.registry.url, repo, image.digest, [await rogue.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, image.digest), ALICE)]);
    await runBackfill(stack.signet, stack.host, `${stack.host}/${repo}`, '--wait');
    expect(await until(stack, ref, false, 5_000)).toMatchObject({ reason: 'untrusted_root' });
    const replaced = await graphqlImage(stack, `${stack.host}/${repo}@${image.digest}`);
    expect(replaced.signatures).toEqual([
      expect.objectContaining({ sourceDigest: sig, withdrawnAt: expect.any(String) }),
      expect.objectContaining({ status: 'UNTRUSTED_ROOT', withdrawnAt: null }),
    ]);
  });
});
