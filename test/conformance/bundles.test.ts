// Every Sigstore bundle fixture in test/fixtures/sigstore-bundles yields the outcome its
// source states (PROVENANCE.md there): the sigstore-conformance `bundle-verify` cases by the
// harness rules of their README, and the sigstore-python and sigstore-go test assets.
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.ts';
import { keyFingerprint, loadTrustedKeys, loadTrustedRoot, type TrustedKey } from '../../services/core/verification/trust.ts';
import { createSignatureVerifier, type ExpectedIdentity } from '../../services/core/verification/verifier.ts';
import { type SignatureVerdict, unprovenVerdict } from '../../services/common/domain/signature.ts';

const BUNDLES = fixturePath('sigstore-bundles');
const CONFORMANCE = join(BUNDLES, 'conformance');
const PUBLIC_GOOD = fixturePath('trust-roots/public-good/trusted_root.json');
const STAGING = fixturePath('trust-roots/staging/trusted_root.json');
const DEFAULT_IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';

function trustedKey(pemPath: string): TrustedKey {
  const key = createPublicKey(readFileSync(pemPath, 'utf8'));
  return { name: 'key', key, fingerprint: keyFingerprint(key) };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const;

interface Case {
  readonly bundle: Buffer;
  readonly artifact: Buffer;
  readonly root: string;
  readonly key: string | null;
  readonly expected?: ExpectedIdentity;
}

async function verify(c: Case): Promise<SignatureVerdict> {
  if (c.key !== null) {
    try {
      createPublicKey(readFileSync(c.key, 'utf8'));
    } catch (err) {
      // Signet refuses such a key when it loads its trusted keys (start-up stops): nothing verifies.
      await expect(loadTrustedKeys(dirname(c.key))).rejects.toThrow(/not a PEM public key/);
      return unprovenVerdict('untrusted_root', `the verification key is unusable: ${(err as Error).message}`, 'none');
    }
  }
  const verifier = createSignatureVerifier(await loadTrustedRoot(c.root), c.key === null ? [] : [trustedKey(c.key)]);
  return verifier.verifyBundle(c.bundle, { digest: sha256(c.artifact), bytes: c.artifact }, c.expected);
}

/** The harness's verdict: verified, and by the given key when the case names one. */
function passes(v: SignatureVerdict, c: Case): boolean {
  return v.outcome === 'verified' && (c.key === null || v.key?.source === 'trusted_key');
}

describe('sigstore-conformance bundle-verify cases', () => {
  const dirs = readdirSync(CONFORMANCE, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

  it('has the 39 cases PROVENANCE.md lists', () => {
    expect(dirs).toHaveLength(39);
  });

  for (const name of dirs) {
    const dir = join(CONFORMANCE, name);
    const mustFail = name.endsWith('_fail');
    it(`${name} ${mustFail ? 'fails' : 'verifies'}`, async () => {
      const file = (f: string) => join(dir, f);
      const c: Case = {
        bundle: readFileSync(file('bundle.sigstore.json')),
        artifact: readFileSync(existsSync(file('artifact')) ? file('artifact') : join(CONFORMANCE, 'a.txt')),
        root: existsSync(file('trusted_root.json')) ? file('trusted_root.json') : PUBLIC_GOOD,
        key: existsSync(file('key.pub')) ? file('key.pub') : null,
        expected: existsSync(file('key.pub'))
          ? undefined
          : {
              subject: existsSync(file('identity')) ? readFileSync(file('identity'), 'utf8').trim() : DEFAULT_IDENTITY,
              issuer: existsSync(file('issuer')) ? readFileSync(file('issuer'), 'utf8').trim() : DEFAULT_ISSUER,
            },
      };
      const v = await verify(c);
      if (mustFail) {
        expect(passes(v, c), `${v.outcome}: ${v.reason}`).toBe(false);
        expect(v.reason).not.toBeNull();
      } else {
        expect(v.reason).toBeNull();
        expect(passes(v, c)).toBe(true);
      }
    });
  }
});

describe('sigstore-python assets (staging trust root, no identity policy)', () => {
  const dir = join(BUNDLES, 'sigstore-python');
  const asset = (bundle: string, artifact: string): Case => ({
    bundle: readFileSync(join(dir, bundle)),
    artifact: readFileSync(join(dir, artifact)),
    root: STAGING,
    key: null,
  });

  for (const name of ['bundle.txt', 'bundle_v3.txt', 'bundle_v3_alt.txt']) {
    it(`${name}.sigstore verifies`, async () => {
      const v = await verify(asset(`${name}.sigstore`, name));
      expect(v.reason).toBeNull();
      expect(v.outcome).toBe('verified');
    });
  }

  it('staging-rekor-v2.txt verifies offline from its inclusion proof and TSA timestamp (Rekor v2: no integrated time)', async () => {
    const v = await verify(asset('staging-rekor-v2.txt.sigstore.json', 'staging-rekor-v2.txt'));
    expect(v.reason).toBeNull();
    expect(v.outcome).toBe('verified');
    expect(v.rekor?.integratedTime).toBeNull();
    expect(v.tsaTime).toBeInstanceOf(Date);
  });

  it('the Rekor v2 DSSE bundle verifies for the subject its statement names (a.txt), and not for the file itself', async () => {
    const c = asset('a.dsse.staging-rekor-v2.txt.sigstore.json', 'a.dsse.staging-rekor-v2.txt');
    const verifier = createSignatureVerifier(await loadTrustedRoot(STAGING), []);
    const named = verifier.verifyBundle(c.bundle, { digest: 'sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf' });
    expect(named.reason).toBeNull();
    expect(named.predicateType).toBe('https://slsa.dev/provenance/v1');
    const other = verifier.verifyBundle(c.bundle, { digest: sha256(c.artifact) });
    expect(other.outcome).toBe('digest_mismatch');
  });

  it('an empty message digest fails as digest mismatch', async () => {
    const c = asset('bundle.txt.sigstore', 'bundle.txt');
    const json = JSON.parse(c.bundle.toString('utf8'));
    json.messageSignature.messageDigest.digest = '';
    const v = await verify({ ...c, bundle: Buffer.from(JSON.stringify(json)) });
    expect(v.outcome).not.toBe('verified');
  });

  for (const [name, outcome] of [
    ['bundle_cve_2022_36056.txt', 'tlog_invalid'],
    ['bundle_invalid_version.txt', 'malformed'],
    ['bundle_no_cert_v1.txt', 'malformed'],
    ['bundle_no_log_entry.txt', 'tlog_missing'],
    ['bundle_no_checkpoint.txt', 'malformed'],
  ] as const) {
    it(`${name}.sigstore fails as ${outcome}`, async () => {
      const v = await verify(asset(`${name}.sigstore`, name));
      expect(v.outcome).toBe(outcome);
    });
  }

  it('bundle_v3_no_signed_time fails: neither an inclusion promise nor a signed timestamp', async () => {
    const v = await verify(asset('bundle_v3_no_signed_time.txt.sigstore.json', 'bundle_v3_no_signed_time.txt'));
    expect(v.outcome).not.toBe('verified');
  });

  it('bundle_v3_github.whl.sigstore carries the Fulcio claims sigstore-python checks', async () => {
    const bundle = readFileSync(join(dir, 'bundle_v3_github.whl.sigstore'));
    const json = JSON.parse(bundle.toString('utf8'));
    // The wheel itself was not copied; its digest is the one the bundle signs.
    const digest = `sha256:${Buffer.from(json.messageSignature.messageDigest.digest, 'base64').toString('hex')}` as const;
    const verifier = createSignatureVerifier(await loadTrustedRoot(PUBLIC_GOOD), []);
    const v = verifier.verifyBundle(bundle, { digest });
    // Without the wheel's bytes the signature itself cannot be checked: the verdict says so, and
    // verifies nothing. The certificate's claims are still read for the ledger only on success.
    expect(v.outcome).toBe('malformed');
    expect(v.reason).toMatch(/needs the signed bytes/);
  });
});

describe('sigstore-go assets', () => {
  const dir = join(BUNDLES, 'sigstore-go');
  const read = (f: string) => readFileSync(join(dir, f));
  const subjectOf = (f: string) => {
    const statement = JSON.parse(Buffer.from(JSON.parse(read(f).toString('utf8')).dsseEnvelope.payload, 'base64').toString('utf8'));
    return `sha512:${statement.subject[0].digest.sha512 as string}` as const;
  };
  // PROVENANCE.md: artifact digest sha512 76176ffa…b329b10751 for both npm bundles.
  const npmSubject = subjectOf('bundle-publish.json');

  it('both npm bundles are about the sigstore@1.3.0 tarball', () => {
    expect(npmSubject).toMatch(/^sha512:76176ffa[0-9a-f]+b329b10751$/);
    expect(subjectOf('bundle-provenance.json')).toBe(npmSubject);
  });

  it('bundle-provenance.json (npm provenance, SLSA v0.2) verifies as the sigstore-js release workflow, with SLSA claims', async () => {
    const verifier = createSignatureVerifier(await loadTrustedRoot(PUBLIC_GOOD), []);
    const v = verifier.verifyBundle(read('bundle-provenance.json'), { digest: npmSubject }, {
      subject: 'https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main',
      issuer: 'https://token.actions.githubusercontent.com',
    });
    expect(v.reason).toBeNull();
    expect(v.predicateType).toBe('https://slsa.dev/provenance/v0.2');
    expect(v.claims).toMatchObject({
      slsaBuilderId: 'https://github.com/actions/runner',
      slsaSourceRepository: 'https://github.com/sigstore/sigstore-js',
      slsaSourceRef: 'refs/heads/main',
      sourceRepositoryUri: 'https://github.com/sigstore/sigstore-js',
    });
    expect(v.claims.slsaSourceDigest).toMatch(/^sha1:[0-9a-f]{40}$/);
  });

  it('bundle-publish.json verifies with the npm publish key', async () => {
    const verifier = createSignatureVerifier(await loadTrustedRoot(PUBLIC_GOOD), [trustedKey(join(dir, 'publish_key.pub'))]);
    const v = verifier.verifyBundle(read('bundle-publish.json'), { digest: npmSubject });
    expect(v.reason).toBeNull();
    expect(v.key?.source).toBe('trusted_key');
    expect(v.identity?.kind).toBe('key');
  });

  it('sigstore.js@2.0.0 provenance (SLSA v1) verifies against sigstore-go’s public-good root', async () => {
    const bundle = read('sigstore.js@2.0.0-provenance.sigstore.json');
    const statement = JSON.parse(Buffer.from(JSON.parse(bundle.toString('utf8')).dsseEnvelope.payload, 'base64').toString('utf8'));
    const verifier = createSignatureVerifier(await loadTrustedRoot(fixturePath('trust-roots/sigstore-go-trusted-root-public-good.json')), []);
    const v = verifier.verifyBundle(bundle, { digest: `sha512:${statement.subject[0].digest.sha512}` }, {
      subject: 'https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main',
    });
    expect(v.reason).toBeNull();
    expect(v.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(v.claims).toMatchObject({
      buildSignerDigest: 'f0b49a04e5a62250e0f60fb128004a73110fe311',
      runInvocationUri: 'https://github.com/sigstore/sigstore-js/actions/runs/5904696764/attempts/1',
      slsaSourceRepository: expect.stringContaining('sigstore/sigstore-js'),
    });
  });

  it('dsse-2sigs.sigstore.json fails: a DSSE envelope must carry exactly one signature', async () => {
    const verifier = createSignatureVerifier(await loadTrustedRoot(PUBLIC_GOOD), []);
    const bundle = read('dsse-2sigs.sigstore.json');
    const statement = JSON.parse(Buffer.from(JSON.parse(bundle.toString('utf8')).dsseEnvelope.payload, 'base64').toString('utf8'));
    const v = verifier.verifyBundle(bundle, { digest: `sha512:${statement.subject[0].digest.sha512}` });
    expect(v.outcome).toBe('malformed');
    expect(v.reason, v.reason ?? '').toMatch(/signature/i);
  });

  it('dsse.sigstore.json verifies as brian@dehamer.com (GitHub OAuth)', async () => {
    const verifier = createSignatureVerifier(await loadTrustedRoot(PUBLIC_GOOD), []);
    const bundle = read('dsse.sigstore.json');
    const statement = JSON.parse(Buffer.from(JSON.parse(bundle.toString('utf8')).dsseEnvelope.payload, 'base64').toString('utf8'));
    const v = verifier.verifyBundle(bundle, { digest: `sha512:${statement.subject[0].digest.sha512}` });
    expect(v.reason).toBeNull();
    expect(v.identity).toEqual({ kind: 'email', subject: 'brian@dehamer.com', issuer: 'https://github.com/login/oauth' });
  });
});

describe('the cosign v3 bundle written as an OCI attestation', () => {
  const bundle = () => readFileSync(fixturePath('cosign/new-bundle-format/oci-attestation.sigstore.json'));
  const root = () => loadTrustedRoot(fixturePath('cosign/new-bundle-format/trusted_root_pgi.json'));
  const image = 'sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4' as const;

  it('verifies for the empty image as cody@soyland.com, and fails for a wrong identity or another image', async () => {
    const verifier = createSignatureVerifier(await root(), []);
    const v = verifier.verifyBundle(bundle(), { digest: image }, { subject: /.*/, issuer: /.*/ });
    expect(v.reason).toBeNull();
    expect(v.identity).toEqual({ kind: 'email', subject: 'cody@soyland.com', issuer: 'https://github.com/login/oauth' });
    expect(v.predicateType).toBe('https://cosign.sigstore.dev/attestation/v1');
    expect(v.rekor?.logIndex).toBe('175508996');
    expect(verifier.verifyBundle(bundle(), { digest: image }, { subject: /wrong/ }).outcome).toBe('identity_mismatch');
    expect(verifier.verifyBundle(bundle(), { digest: `sha256:${'0'.repeat(64)}` }).outcome).toBe('digest_mismatch');
  });
});
