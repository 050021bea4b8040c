// `signet reverify` as an operator runs it: a signature from a Sigstore that was not trusted when it
// was pushed becomes verified once its root is added (dry run first), and untrusted again when the
// root is taken away — with the registry stopped, so nothing but the ledger is read.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN_SIGN_PREDICATE } from '../../services/common/domain/signature.ts';
import { runSignetCli } from '../helpers/cli.ts';
import { pushBundleReferrer, pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { OCI_MANIFEST, pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_REDIS_URL, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { createTestSigstore, inTotoStatement, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let ours: TestSigstore;
let partner: TestSigstore;
let tmp: string;
let env: Record<string, string>;

beforeAll(async () => {
  [db, ours, partner] = await Promise.all([createTestDb(), createTestSigstore(), createTestSigstore()]);
  tmp = await mkdtemp(join(tmpdir(), 'signet-reverify-'));
  await writeFile(join(tmp, 'ours.json'), JSON.stringify(ours.trustedRoot));
  await writeFile(join(tmp, 'partner.json'), JSON.stringify(partner.trustedRoot));
  const port = await freePort();
  await writeFile(join(tmp, 'policy.yaml'), `allow_with_verification:\n  "127.0.0.1:${port}":\n    "*/*":\n      certificate-identity: ${ALICE.email}\n      certificate-oidc-issuer: ${ALICE.issuer}\n`);
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    SIGNET_TRUSTED_ROOT: join(tmp, 'ours.json'),
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
    SIGNET_INSECURE_REGISTRIES: `127.0.0.1:${port}`,
  };
  signet = await startTestSignet(env);
  env.SIGNET_QUEUE_PREFIX = signet.config.redis.queuePrefix;
  registry = await startRegistry({ port, notifications: { url: `${signet.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });
});

afterAll(async () => {
  await registry?.stop();
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

function outcomes() {
  return db.db.selectFrom('signatures').select(['format', 'outcome', 'trust_root_version']).orderBy('id').execute();
}

async function allowed(ref: string): Promise<boolean> {
  const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(ref)}` });
  return res.json<{ allowed: boolean }>().allowed;
}

describe('signet reverify', () => {
  it('re-evaluates stored material against new roots, with no registry, and the decision follows', async () => {
    const repo = 'partner/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [await partner.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), ALICE)]);
    const bundle = await partner.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE);
    await pushBundleReferrer(registry.url, repo, { digest: image.digest, mediaType: OCI_MANIFEST, size: image.bytes.length }, bundle, COSIGN_SIGN_PREDICATE);
    await eventually(async () => ((await outcomes()).length === 2 ? true : undefined), 'both signatures recorded');
    expect((await outcomes()).map((o) => o.outcome)).toEqual(['untrusted_root', 'untrusted_root']);
    const ref = `${registry.host}/${repo}@${image.digest}`;
    expect(await allowed(ref)).toBe(false);

    // Nothing may be fetched: the registry is gone for the rest of the test.
    await registry.stop();

    const both = { ...env, SIGNET_TRUSTED_ROOT: `${join(tmp, 'ours.json')},${join(tmp, 'partner.json')}` };
    const dry = await runSignetCli(['reverify', '--dry-run', '--json'], both);
    expect(dry.code, dry.stderr).toBe(3);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, checked: 2, changed: 2, transitions: { 'untrusted_root→verified': 2 } });
    expect((await outcomes()).map((o) => o.outcome)).toEqual(['untrusted_root', 'untrusted_root']);

    const run = await runSignetCli(['reverify'], both);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/re-verified 2 signatures .*: 2 changed, 1 images decided again/);
    expect(run.stdout).toMatch(/untrusted_root→verified\s+2/);
    const after = await outcomes();
    expect(after.map((o) => o.outcome)).toEqual(['verified', 'verified']);
    expect(new Set(after.map((o) => o.trust_root_version)).size).toBe(1);
    await eventually(async () => ((await allowed(ref)) ? true : undefined), 'the image is allowed after reverify');

    // Nothing left to do: a second dry run changes nothing.
    expect((await runSignetCli(['reverify', '--dry-run', '--json'], both)).code).toBe(0);

    // The partner's root is withdrawn: its signatures stop verifying, and the image is denied again.
    const back = await runSignetCli(['reverify', '--json'], env);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ changed: 2, transitions: { 'verified→untrusted_root': 2 } });
    await eventually(async () => ((await allowed(ref)) ? undefined : true), 'the image is denied again');
  });

  it('refuses arguments it does not know, and an unreadable trusted root, with exit code 2', async () => {
    expect((await runSignetCli(['reverify', 'extra'], env)).code).toBe(2);
    const bad = await runSignetCli(['reverify'], { ...env, SIGNET_TRUSTED_ROOT: join(tmp, 'missing.json') });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/missing\.json/);
  });
});
