// Precomputed admission decisions, end to end: a real docker-registry notifies Signet; decisions
// flip when signatures are pushed and when the policy changes — the latter with the registry
// stopped, so no answer can come from a registry call. A second, API-only process must agree.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { answered, ask, type Answer } from '../helpers/decisions.ts';
import { createTestSigstore, generateTestKey, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ISSUER = 'https://accounts.example.com';

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let tmp: string;
let port: number;

function policyFor(host: string, signer: string): string {
  return `
allow_with_verification:
  "${host}":
    team/*:
      certificate-identity: ${signer}
      certificate-oidc-issuer: ${ISSUER}
allow_without_verification:
  "${host}": [public/*]
`;
}

async function start(policy: string, roles = 'ingest,worker,api', prefix?: string): Promise<TestSignet> {
  const file = join(tmp, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, policy);
  return startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_ROLES: roles,
    SIGNET_POLICY: file,
    SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
    SIGNET_INSECURE_REGISTRIES: `127.0.0.1:${port}`,
    ...(prefix === undefined ? {} : { SIGNET_QUEUE_PREFIX: prefix }),
  });
}

/** Waits for the answer to have every field of `want`. */
const until = (s: TestSignet, image: string, want: Partial<Answer>) => answered(s, image, want);

async function sign(repo: string, digest: Digest, email: string): Promise<void> {
  await pushCosignSignatures(registry.url, repo, digest, [
    await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, digest), { email, issuer: ISSUER }),
  ]);
}

beforeAll(async () => {
  [db, sigstore] = await Promise.all([createTestDb(), createTestSigstore()]);
  tmp = await mkdtemp(join(tmpdir(), 'signet-decisions-'));
  await writeFile(join(tmp, 'trusted_root.json'), JSON.stringify(sigstore.trustedRoot));
  port = await freePort();
  signet = await start(policyFor(`127.0.0.1:${port}`, 'alice@example.com'));
  registry = await startRegistry({ port, notifications: { url: `${signet.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });
});

afterAll(async () => {
  await registry?.stop();
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

describe('decisions', () => {
  it('deny an unsigned image, then allow it once the required identity signs it (driven by the .sig push)', async () => {
    const image = await pushRandomImage(registry.url, 'team/app', 'v1');
    const ref = `${registry.host}/team/app:v1`;
    const unsigned = await until(signet, ref, { reason: 'unsigned' });
    expect(unsigned).toMatchObject({ allowed: false, digest: image.digest });

    await sign('team/app', image.digest, 'alice@example.com');
    const allowed = await until(signet, ref, { allowed: true });
    expect(allowed).toMatchObject({ reason: 'verified', signers: [{ subject: 'alice@example.com', issuer: ISSUER }] });
    // By digest too, and through the batch and OPA endpoints.
    expect(await ask(signet, `${registry.host}/team/app@${image.digest}`)).toMatchObject({ allowed: true });
    const batch = await signet.app.inject({
      method: 'POST',
      url: '/v1/decisions',
      payload: { images: [ref, `${registry.host}/team/never:v1`, 'Not A Ref', `${registry.host}/public/tool:1`] },
    });
    expect(batch.json<{ decisions: Answer[] }>().decisions.map((d) => [d.allowed, d.reason])).toEqual([
      [true, 'verified'],
      [false, 'unknown'],
      [false, 'invalid_reference'],
      [true, 'allowed_without_verification'],
    ]);
    const opa = await signet.app.inject({ method: 'POST', url: '/verify', payload: { image: ref } });
    expect(opa.json()).toMatchObject({ verified: true, reason: 'verified' });

    // Gatekeeper: allowed, no error; mutation pins the tag to the digest.
    const gk = await signet.app.inject({
      method: 'POST',
      url: '/gatekeeper/mutate',
      payload: { apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: [ref] } },
    });
    expect(gk.json()).toMatchObject({ response: { items: [{ key: ref, value: `${registry.host}/team/app@${image.digest}` }] } });
    // Admission: a Deployment using the tag is allowed, and the mutating webhook pins it.
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u1', kind: { kind: 'Deployment' }, object: { spec: { template: { spec: { containers: [{ name: 'app', image: ref }] } } } } },
    };
    expect((await signet.app.inject({ method: 'POST', url: '/admission/validate', payload: review })).json()).toMatchObject({
      response: { uid: 'u1', allowed: true },
    });
    const mutated = (await signet.app.inject({ method: 'POST', url: '/admission/mutate', payload: review })).json<{ response: { patch: string } }>();
    expect(JSON.parse(Buffer.from(mutated.response.patch, 'base64').toString())).toEqual([
      { op: 'replace', path: '/spec/template/spec/containers/0/image', value: `${registry.host}/team/app@${image.digest}` },
    ]);
  });

  it('deny an image signed by someone else, and anything outside the policy', async () => {
    const image = await pushRandomImage(registry.url, 'team/other', 'v1');
    await sign('team/other', image.digest, 'bob@example.com');
    await until(signet, `${registry.host}/team/other:v1`, { reason: 'identity_mismatch', allowed: false });
    expect(await ask(signet, 'docker.io/library/nginx:latest')).toMatchObject({ allowed: false, reason: 'not_covered_by_policy' });
  });

  it('a policy naming a new key re-verifies stored signatures by that key, with no registry call', async () => {
    const key = generateTestKey();
    const image = await pushRandomImage(registry.url, 'tools/cli', 'v1');
    await pushCosignSignatures(registry.url, 'tools/cli', image.digest, [
      await sigstore.signWithKey(simpleSigningPayload(`${registry.host}/tools/cli`, image.digest), key),
    ]);
    const ref = `${registry.host}/tools/cli:v1`;
    // Nobody trusts the key yet (and there is no Rekor entry): not covered, and untrusted in the ledger.
    await until(signet, ref, { reason: 'not_covered_by_policy' });
    await eventually(async () => {
      const row = await db.db.selectFrom('signatures').select('outcome').where('key_fingerprint', 'is', null).executeTakeFirst();
      return row?.outcome === 'untrusted_root' ? row : undefined;
    }, 'the key signature stored as untrusted_root');

    const indented = key.publicKeyPem.trim().split('\n').map((l) => `          ${l}`).join('\n');
    await writeFile(
      signet.config.policyPath!,
      policyFor(registry.host, 'alice@example.com').replace(
        'allow_without_verification:',
        `    tools/*:
      insecure-ignore-tlog: true
      key: |
${indented}
allow_without_verification:`,
      ),
    );
    await signet.reloadPolicy();
    const allowed = await until(signet, ref, { allowed: true });
    expect(allowed.reason).toBe('verified');
    expect(allowed.signers[0]!.subject).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The team/* rule is unchanged by the edit.
    expect(await ask(signet, `${registry.host}/team/app:v1`)).toMatchObject({ allowed: true });
  });

  it('SIGNET_UNKNOWN_IMAGES=allow admits only images the ledger has never seen', async () => {
    const unsigned = await pushRandomImage(registry.url, 'team/unknown-setting', 'v1');
    await until(signet, `${registry.host}/team/unknown-setting:v1`, { reason: 'unsigned' });
    const file = join(tmp, 'policy-unknown.yaml');
    await writeFile(file, policyFor(`127.0.0.1:${port}`, 'alice@example.com'));
    const lenient = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: file, SIGNET_UNKNOWN_IMAGES: 'allow' });
    try {
      const never = await ask(lenient, `${registry.host}/team/never-pushed:v1`);
      expect(never).toMatchObject({ allowed: true, reason: 'unknown', digest: null });
      expect((never as unknown as { message: string }).message).toContain('SIGNET_UNKNOWN_IMAGES=allow');
      // Known to the ledger: the policy decides, whatever the setting.
      expect(await ask(lenient, `${registry.host}/team/unknown-setting@${unsigned.digest}`)).toMatchObject({ allowed: false, reason: 'unsigned' });
      // The default stays deny.
      expect(await ask(signet, `${registry.host}/team/never-pushed:v1`)).toMatchObject({ allowed: false, reason: 'unknown' });
    } finally {
      await lenient.stop();
    }
  });

  it('rejects malformed requests with 400', async () => {
    for (const payload of [{}, { images: [] }, { images: 'x' }, { images: Array.from({ length: 300 }, () => 'a') }]) {
      expect((await signet.app.inject({ method: 'POST', url: '/v1/decisions', payload })).statusCode).toBe(400);
    }
    expect((await signet.app.inject({ method: 'GET', url: '/v1/decisions' })).statusCode).toBe(400);
  });

  it('re-decides the ledger from stored material when the policy changes, with the registry stopped, and two API processes agree', async () => {
    const alice = `${registry.host}/team/app:v1`;
    const bob = `${registry.host}/team/other:v1`;
    await until(signet, alice, { allowed: true });
    const host = registry.host;
    await registry.stop();
    await signet.stop();

    // New policy: bob, not alice. Same database and queue prefix as a shared deployment would have.
    const prefix = signet.config.redis.queuePrefix;
    signet = await start(policyFor(host, 'bob@example.com'), 'ingest,worker,api', prefix);
    const second = await start(policyFor(host, 'bob@example.com'), 'api', prefix);
    try {
      await signet.redecided;
      for (const s of [signet, second]) {
        expect(await until(s, bob, { allowed: true })).toMatchObject({ signers: [{ subject: 'bob@example.com', issuer: ISSUER }] });
        expect(await ask(s, alice)).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
      }
      expect((await ask(signet, bob)).policyVersion).toBe((await ask(second, bob)).policyVersion);
    } finally {
      await second.stop();
    }
  });

  it('follows edits of the policy file without a restart, and keeps the policy in force when an edit is invalid', async () => {
    const host = `127.0.0.1:${port}`;
    const alice = `${host}/team/app:v1`;
    const file = signet.config.policyPath!;
    const before = (await ask(signet, alice)).policyVersion;
    await writeFile(file, 'allow_with_verification: [');
    expect(await signet.reloadPolicy()).toBe(before);
    await writeFile(file, policyFor(host, 'alice@example.com'));
    // The file watcher picks the change up by itself.
    const answer = await until(signet, alice, { allowed: true });
    expect(answer.policyVersion).not.toBe(before);
    expect(await ask(signet, `${host}/team/other:v1`)).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
  });
});
