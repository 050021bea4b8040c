import { createPublicKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest, sha256Digest } from '../../common/domain/digest.ts';
import { cosignLayersFromFixture, fixturePath, readFixture } from '../../../test/helpers/fixtures.ts';
import { createVerificationPool, type VerificationPool } from './pool.ts';
import { certificateKeyFingerprint, keyFingerprint, loadTrustedRoot, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';
import { createSignatureVerifier, type SignatureVerifier } from './verifier.ts';

const DIR = 'cosign/connaisseur-testimage/manifests';
const KEYLESS = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
const KEYED = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');
const layer = (subject: string) => cosignLayersFromFixture(DIR, `sha256-${subject.slice(7)}.sig.json`)[0]!;

describe('the verification pool', () => {
  let root: LoadedTrustedRoot;
  let keys: TrustedKey[];
  let verifier: SignatureVerifier;
  let pool: VerificationPool;

  beforeAll(async () => {
    root = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const alice = createPublicKey(readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8'));
    keys = [{ name: 'alice', key: alice, fingerprint: keyFingerprint(alice) }];
    verifier = createSignatureVerifier(root, keys);
    pool = createVerificationPool([root], keys, { size: 2 });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('gives the verdicts the verifier gives: keyless, key-based, a bundle, and failures', async () => {
    const artifact = readFixture('sigstore-bundles/conformance/a.txt');
    const bundle = readFixture('sigstore-bundles/conformance/happy-path-v0.3/bundle.sigstore.json');
    const replayed = layer(KEYLESS);
    const cases = [
      [pool.verifyCosignLayer(layer(KEYLESS), KEYLESS), verifier.verifyCosignLayer(layer(KEYLESS), KEYLESS)],
      [pool.verifyCosignLayer(layer(KEYED), KEYED), verifier.verifyCosignLayer(layer(KEYED), KEYED)],
      [pool.verifyCosignLayer(replayed, KEYED), verifier.verifyCosignLayer(replayed, KEYED)],
      [pool.verifyCosignLayer(layer(KEYLESS), KEYLESS, { subject: 'someone@example.com' }), verifier.verifyCosignLayer(layer(KEYLESS), KEYLESS, { subject: 'someone@example.com' })],
      [
        pool.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: artifact }),
        verifier.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: artifact }),
      ],
      [pool.verifyCosignAttestation(layer(KEYLESS), KEYLESS), verifier.verifyCosignAttestation(layer(KEYLESS), KEYLESS)],
    ] as const;
    const outcomes: string[] = [];
    for (const [pooled, direct] of cases) {
      const v = await pooled;
      expect(v).toEqual(direct);
      outcomes.push(v.outcome);
    }
    expect(outcomes).toEqual(['verified', 'verified', 'digest_mismatch', 'identity_mismatch', 'verified', 'malformed']);
  });

  it('answers many requests at once, spread over its threads', async () => {
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => pool.verifyCosignLayer(layer(KEYLESS), KEYLESS)));
    expect(new Set(verdicts.map((v) => v.outcome))).toEqual(new Set(['verified']));
  });

  it('rejects calls once closed', async () => {
    const p = createVerificationPool([root], keys, { size: 1 });
    await p.close();
    await expect(p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).rejects.toThrow(/closed/);
  });
});

describe('certificateKeyFingerprint', () => {
  it('equals the fingerprint of the exported key for every certificate in the trusted roots and fixtures', async () => {
    const root = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const staging = await loadTrustedRoot(fixturePath('trust-roots/staging/trusted_root.json'));
    const certs = [root, staging]
      .flatMap((r) => r.root.certificateAuthorities.flatMap((ca) => ca.certChain?.certificates ?? []))
      .map((c) => new X509Certificate(c.rawBytes));
    certs.push(new X509Certificate(layer(KEYLESS).annotations['dev.sigstore.cosign/certificate']!));
    certs.push(new X509Certificate(readFixture('cosign/containers-image/fulcio_v1.crt.pem')));
    expect(certs.length).toBeGreaterThan(5);
    for (const cert of certs) {
      expect(certificateKeyFingerprint(cert)).toBe(keyFingerprint(cert.publicKey));
    }
  });
});
