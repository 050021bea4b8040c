// Forged tag moves, end to end against a real docker-registry. Attack: a delivery authenticated
// with one source's secret (Harbor's, bound to no registry) named a registry the registries file
// binds to another secret, and its tag → digest pair was written to the ledger as fact — `prod`
// moved to a signed digest while the registry itself pointed it elsewhere (or answered 404), so
// validate-only admission (Gatekeeper validate, OPA, Kyverno) decided a digest other than the one
// the kubelet pulls. What must hold: a registry with a bound secret accepts no other secret, and a
// tag moves only when the registry itself says so.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import { TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { answered, ask } from '../helpers/decisions.ts';
import { deliveryCount, jobCount, ledgerTag, ranOnce, settled, tagHistory } from '../helpers/tags.ts';
import { simpleSigningPayload } from '../signer/signer.ts';
import { distributionPush, garPush, githubPackagePush, harborPush, type PushReport } from '../helpers/webhooks.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const REGISTRY_SECRET = 'registry-own-secret-0123456789';
const HARBOR_SECRET = 'harbor-secret-0123456789abcdef';
const GITHUB_SECRET = 'github-secret-0123456789abcdef';
const GAR_SECRET = 'gar-push-token-0123456789abcdef';
const REPO = 'team/app';

function post(signet: TestSignet, source: string, payload: string, headers: Record<string, string>, query = '') {
  return signet.app.inject({ method: 'POST', url: `/webhooks/${source}${query}`, headers: { 'content-type': 'application/json', ...headers }, payload });
}

type Sender = (signet: TestSignet, r: PushReport) => ReturnType<typeof post>;

/** Every source that can name an arbitrary registry host, each with a valid secret of its own. */
const SENDERS: [string, Sender][] = [
  ["harbor, with Harbor's own secret", (s, r) => post(s, 'harbor', harborPush(r), { authorization: HARBOR_SECRET })],
  ['distribution, with the shared SIGNET_WEBHOOK_TOKEN', (s, r) => post(s, 'distribution', distributionPush(r), { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}` })],
  ["github, signed with GitHub's secret", (s, r) => {
    const { body, headers } = githubPackagePush(r, GITHUB_SECRET);
    return post(s, 'github', body, headers);
  }],
  ["gar, with the Pub/Sub push subscription's token", (s, r) => post(s, 'gar', garPush(r), {}, `?token=${GAR_SECRET}`)],
];

/** An unsigned image under `prod` and an image alice signed under `release`, both indexed and decided. */
async function prodAndRelease(stack: TestStack): Promise<{ unsigned: PushedImage; signed: PushedImage }> {
  const { registry, sigstore, signet, host } = stack;
  const unsigned = await pushRandomImage(registry.url, REPO, 'prod');
  const signed = await pushRandomImage(registry.url, REPO, 'release');
  await pushCosignSignatures(registry.url, REPO, signed.digest, [await sigstore.signKeyless(simpleSigningPayload(`${host}/${REPO}`, signed.digest), ALICE)]);
  await answered(signet, `${host}/${REPO}:prod`, { digest: unsigned.digest, reason: 'unsigned' });
  await answered(signet, `${host}/${REPO}:release`, { digest: signed.digest, allowed: true });
  await settled(signet.queue!);
  return { unsigned, signed };
}

describe('a registry whose webhook secret the registries file binds', () => {
  let stack: TestStack;
  let unsigned: PushedImage;
  let signed: PushedImage;

  beforeAll(async () => {
    stack = await startTestStack({
      name: 'forged-bound',
      policy: (host) => policyAllowing(host, ALICE),
      // The registry notifies with its own secret, as the registries file says it does.
      notifyToken: REGISTRY_SECRET,
      env: async ({ tmp, host }) => {
        const file = join(tmp, 'registries.yaml');
        await writeFile(file, `registries:\n  - host: "${host}"\n    insecure: true\n    reconcile: false\n    webhook: { source: distribution, secret: ${REGISTRY_SECRET} }\n`);
        return {
          SIGNET_REGISTRIES_FILE: file,
          SIGNET_WEBHOOK_SECRET_HARBOR: HARBOR_SECRET,
          SIGNET_WEBHOOK_SECRET_GITHUB: GITHUB_SECRET,
          SIGNET_WEBHOOK_SECRET_GAR: GAR_SECRET,
          SIGNET_RECONCILE_INTERVAL: '0',
        };
      },
    });
    ({ unsigned, signed } = await prodAndRelease(stack));
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it.each(SENDERS)('%s, naming it: refused with 403, nothing recorded or queued, prod unmoved', async (_name, send) => {
    const { signet, db, host } = stack;
    const [deliveries, jobs] = [await deliveryCount(db), await jobCount(signet.queue!)];
    const res = await send(signet, { host, repository: REPO, digest: signed.digest, tag: 'prod' });
    expect(res.statusCode, res.body).toBe(403);
    expect(res.json<{ message: string }>().message).toContain(`${host} accepts deliveries only with the webhook secret the registries file binds to it`);
    expect(await deliveryCount(db)).toBe(deliveries);
    expect(await jobCount(signet.queue!)).toBe(jobs);
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);
    expect(await tagHistory(db, REPO, 'prod')).toEqual([unsigned.digest]);
    expect(await ask(signet, `${host}/${REPO}:prod`)).toMatchObject({ allowed: false, reason: 'unsigned', digest: unsigned.digest });
  });

  it("the registry's own notifications (its bound secret) are still taken", async () => {
    const { signet, registry, host } = stack;
    const next = await pushRandomImage(registry.url, REPO, 'next');
    await answered(signet, `${host}/${REPO}:next`, { digest: next.digest, reason: 'unsigned' });
  });
});

describe('a registry with no bound secret: a webhook tag is a hint, confirmed in the registry', () => {
  let stack: TestStack;
  let unsigned: PushedImage;
  let signed: PushedImage;

  beforeAll(async () => {
    stack = await startTestStack({
      name: 'forged-hint',
      policy: (host) => policyAllowing(host, ALICE),
      env: () => ({ SIGNET_WEBHOOK_SECRET_HARBOR: HARBOR_SECRET, SIGNET_WEBHOOK_SECRET_GITHUB: GITHUB_SECRET, SIGNET_WEBHOOK_SECRET_GAR: GAR_SECRET, SIGNET_RECONCILE_INTERVAL: '0' }),
    });
    ({ unsigned, signed } = await prodAndRelease(stack));
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it.each(SENDERS)('%s, claiming prod points at the signed digest: prod stays where the registry says', async (_name, send) => {
    const { signet, db, host } = stack;
    const res = await send(signet, { host, repository: REPO, digest: signed.digest, tag: 'prod' });
    expect(res.statusCode, res.body).toBe(202);
    await ranOnce(signet.queue!, res.json<{ queued: string[] }>().queued);
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);
    expect(await tagHistory(db, REPO, 'prod')).toEqual([unsigned.digest]);
    const prod = `${host}/${REPO}:prod`;
    expect(await ask(signet, prod)).toMatchObject({ allowed: false, reason: 'unsigned', digest: unsigned.digest });
    // Validate-only integrations ask the same table: OPA and Gatekeeper's validating provider.
    const opa = await signet.app.inject({ method: 'POST', url: '/verify', payload: { image: prod } });
    expect(opa.json()).toMatchObject({ verified: false });
    const gk = await signet.app.inject({
      method: 'POST',
      url: '/gatekeeper/validate',
      payload: { apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: [prod] } },
    });
    expect(gk.json()).toMatchObject({ response: { items: [{ key: prod, value: { allowed: false, reason: 'unsigned' } }] } });
  });

  it('a tag the registry does not have (404) is never recorded, however signed the digest it names', async () => {
    const { signet, db, host } = stack;
    const res = await post(signet, 'harbor', harborPush({ host, repository: REPO, digest: signed.digest, tag: 'ghost' }), { authorization: HARBOR_SECRET });
    expect(res.statusCode, res.body).toBe(202);
    await ranOnce(signet.queue!, res.json<{ queued: string[] }>().queued);
    expect(await ledgerTag(db, REPO, 'ghost')).toBeNull();
    expect(await ask(signet, `${host}/${REPO}:ghost`)).toMatchObject({ allowed: false, reason: 'unknown' });
  });

  it('a real push still moves the tag, once the registry confirms it', async () => {
    const { signet, registry, sigstore, host } = stack;
    const image = await pushRandomImage(registry.url, REPO, null);
    await pushCosignSignatures(registry.url, REPO, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${host}/${REPO}`, image.digest), ALICE)]);
    await answered(signet, `${host}/${REPO}@${image.digest}`, { allowed: true });
    const res = await fetch(`${registry.url}/v2/${REPO}/manifests/prod`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: new Uint8Array(image.bytes),
    });
    expect(res.status).toBe(201);
    await answered(signet, `${host}/${REPO}:prod`, { digest: image.digest, allowed: true });
  });
});
