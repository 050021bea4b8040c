// The real admission requests in test/fixtures/admission, answered by an API-only Signet.
// None of their images is in this (empty) ledger: the policy decides what that means.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { readFixture, readFixtureJson } from '../helpers/fixtures.ts';
import { startTestSignet, type TestSignet } from '../helpers/signet.ts';

let db: TestDb;
let signet: TestSignet;
let tmp: string;

const CHARLIE = 'securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff';

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-admission-'));
  await writeFile(
    join(tmp, 'policy.yaml'),
    `
allow_with_verification:
  docker.io:
    securesystemsengineering/*:
      certificate-identity: philipp.belitz@securesystems.de
      certificate-oidc-issuer: https://github.com/login/oauth
allow_without_verification:
  docker.io: [library/*]
`,
  );
  signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml') });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

function post(url: string, payload: unknown) {
  return signet.app.inject({ method: 'POST', url, payload: payload as object });
}

describe('POST /admission/validate', () => {
  it('denies the connaisseur Pod (unknown image), naming the image and the reason', async () => {
    const review = readFixtureJson<{ request: { uid: string } }>('admission/admissionreview/connaisseur-02_pod.json');
    const res = await post('/admission/validate', review);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ apiVersion: string; kind: string; response: { uid: string; allowed: boolean; status: { code: number; message: string } } }>();
    expect(body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: false } });
    expect(body.response.status.code).toBe(403);
    expect(body.response.status.message).toContain(CHARLIE);
    expect(body.response.status.message).toContain('unknown');
  });

  it.each([
    ['init containers', 'connaisseur-19_pod_initcontainer.json'],
    ['ephemeral containers', 'connaisseur-20_pod_ephemeralcontainer.json'],
  ])('looks at %s too: nginx is allowed without verification, charlie is still named', async (_name, file) => {
    const res = await post('/admission/validate', readFixtureJson(`admission/admissionreview/${file}`));
    const message = res.json<{ response: { status: { message: string } } }>().response.status.message;
    expect(message).toContain('Signet denied 1 image(s)');
    expect(message).toContain(CHARLIE);
    expect(message).not.toContain('nginx:');
  });

  it('answers a v1beta1 Deployment review in v1beta1, reading the pod template', async () => {
    const res = await post('/admission/validate', readFixtureJson('admission/admissionreview/connaisseur-01_deployment.json'));
    const body = res.json<{ apiVersion: string; response: { allowed: boolean; status: { message: string } } }>();
    expect(body.apiVersion).toBe('admission.k8s.io/v1beta1');
    expect(body.response.allowed).toBe(false);
    expect(body.response.status.message).toContain('securesystemsengineering/alice-image:test');
  });

  it('allows a Pod whose every image the policy allows', async () => {
    const review = readFixtureJson<any>('admission/admissionreview/connaisseur-19_pod_initcontainer.json');
    review.request.object.spec.containers[0].image = 'nginx:1.27';
    const res = await post('/admission/validate', review);
    expect(res.json()).toMatchObject({ response: { allowed: true } });
  });

  it('rejects what is not an AdmissionReview with 400', async () => {
    expect((await post('/admission/validate', { kind: 'Pod' })).statusCode).toBe(400);
    expect((await post('/admission/validate', readFixtureJson('admission/admissionreview/admissionreview-response.allow.v1beta1.k8s-docs.json'))).statusCode).toBe(400);
  });
});

describe('POST /admission/mutate', () => {
  it('allows and leaves images it cannot pin alone (no patch)', async () => {
    const res = await post('/admission/mutate', readFixtureJson('admission/admissionreview/connaisseur-19_pod_initcontainer.json'));
    const body = res.json<{ response: Record<string, unknown> }>();
    expect(body.response.allowed).toBe(true);
    expect(body.response.patch).toBeUndefined();
  });
});

describe('POST /gatekeeper/validate', () => {
  it("answers ratify's ProviderRequest with one item per key, an error for the denied image", async () => {
    const res = await post('/gatekeeper/validate', JSON.parse(readFixture('admission/gatekeeper/provider-request.ratify-contributing.json').toString()));
    expect(res.statusCode).toBe(200);
    const body = res.json<{ apiVersion: string; kind: string; response: { idempotent: boolean; items: { key: string; value: { allowed: boolean; reason: string }; error?: string }[]; systemError?: string } }>();
    expect(body).toMatchObject({ apiVersion: 'externaldata.gatekeeper.sh/v1alpha1', kind: 'ProviderResponse', response: { idempotent: true } });
    expect(body.response.items).toHaveLength(1);
    expect(body.response.items[0]).toMatchObject({ key: 'localhost:5000/net-monitor:v1', value: { allowed: false, reason: 'not_covered_by_policy' } });
    expect(body.response.items[0]!.error).toContain('not_covered_by_policy');
    expect(body.response.systemError).toBeUndefined();
  });

  it('answers v1beta1 requests in v1beta1 and keeps the key order', async () => {
    const keys = ['nginx', CHARLIE, 'Bad Ref'];
    const res = await post('/gatekeeper/validate', { apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys } });
    const body = res.json<{ apiVersion: string; response: { items: { key: string; value: { reason: string }; error?: string }[] } }>();
    expect(body.apiVersion).toBe('externaldata.gatekeeper.sh/v1beta1');
    expect(body.response.items.map((i) => [i.key, i.value.reason, i.error === undefined])).toEqual([
      ['nginx', 'allowed_without_verification', true],
      [CHARLIE, 'unknown', false],
      ['Bad Ref', 'invalid_reference', false],
    ]);
  });

  it('rejects a body that is not a ProviderRequest with 400', async () => {
    expect((await post('/gatekeeper/validate', { request: { keys: 'x' } })).statusCode).toBe(400);
  });
});
