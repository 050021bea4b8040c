// Signer identities are for token holders (and mTLS clients): with SIGNET_API_TOKENS set, the
// decision endpoints answer allow/deny and the reason to anyone, and the signers only to a caller
// with a token; what a denied user reads (AdmissionReview, Gatekeeper errors) never names a signer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { eventually } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const MALLORY = { email: 'mallory@example.com', issuer: 'https://accounts.example.com' };
const TOKEN = 'disclosure-test-token-0123456789';

let stack: TestStack;
let allowedRef: string;
let mismatchRef: string;

beforeAll(async () => {
  stack = await startTestStack({ name: 'disclosure', policy: (host) => policyAllowing(host, ALICE), env: () => ({ SIGNET_API_TOKENS: TOKEN }) });
  const { registry, sigstore, signet } = stack;
  const sign = async (repo: string, who: typeof ALICE) => {
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), who)]);
    const ref = `${registry.host}/${repo}@${image.digest}`;
    await eventually(async () => {
      const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(ref)}`, headers: { authorization: `Bearer ${TOKEN}` } });
      return res.json<{ reason: string }>().reason === (who === ALICE ? 'verified' : 'identity_mismatch') ? true : undefined;
    }, `${ref} decided`);
    return ref;
  };
  [allowedRef, mismatchRef] = await Promise.all([sign('team/app', ALICE), sign('team/rogue', MALLORY)]);
});
afterAll(() => stack?.stop());

const identities = /alice@example\.com|mallory@example\.com/;

describe('signer identities on the decision endpoints', () => {
  it('are shown to a token holder', async () => {
    const res = await fetch(`${stack.signet.url}/v1/decisions?image=${encodeURIComponent(allowedRef)}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await res.json()).toMatchObject({ allowed: true, reason: 'verified', signers: [{ subject: ALICE.email }] });
  });

  it('are not shown without a token: the answer and the rule are', async () => {
    const url = stack.signet.url;
    for (const ref of [allowedRef, mismatchRef]) {
      const single = await (await fetch(`${url}/v1/decisions?image=${encodeURIComponent(ref)}`)).text();
      const batch = await (await fetch(`${url}/v1/decisions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: [ref] }) })).text();
      const opa = await (await fetch(`${url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: ref }) })).text();
      const gatekeeper = await (
        await fetch(`${url}/gatekeeper/validate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: [ref] } }),
        })
      ).text();
      for (const body of [single, batch, opa, gatekeeper]) {
        expect(body).not.toMatch(identities);
      }
    }
    const allowed = await (await fetch(`${url}/v1/decisions?image=${encodeURIComponent(allowedRef)}`)).json();
    expect(allowed).toMatchObject({ allowed: true, reason: 'verified', signers: [], message: `signed as allow_with_verification.${stack.host}.*/* requires` });
    const denied = await (await fetch(`${url}/v1/decisions?image=${encodeURIComponent(mismatchRef)}`)).json();
    expect(denied).toMatchObject({ allowed: false, reason: 'identity_mismatch', message: expect.stringContaining('no signature matches') });
  });

  it('never reach a denied user through AdmissionReview, even for a token holder', async () => {
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, object: { spec: { containers: [{ name: 'a', image: mismatchRef }] } } },
    };
    const res = await fetch(`${stack.signet.url}/admission/validate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(review),
    });
    const body = await res.json();
    expect(body.response).toMatchObject({ allowed: false, status: { code: 403 } });
    expect(body.response.status.message).toContain('identity_mismatch');
    expect(body.response.status.message).not.toMatch(identities);
  });
});
