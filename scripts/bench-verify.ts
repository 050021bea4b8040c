// Verification cost on one core, against the raw node:crypto ECDSA P-256 verify rate measured in
// the same run: real public-good signatures from test/fixtures (a keyless cosign signature —
// Fulcio chain, SCT, Rekor SET, signature — and a key-based one) through Signet's verifier, which
// is what the worker runs for every signature layer it has not seen; Sigstore bundles v0.3; and a
// verification-cache hit.
//
//   node scripts/bench-verify.ts [--seconds 3]
//
// Prints JSON: verifications per second and the ratio to raw ECDSA verifies per second.
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DEFAULT_TRUSTED_ROOTS } from '../services/common/config.ts';
import { parseDigest, sha256Digest } from '../services/common/domain/digest.ts';
import { createCachingVerifier } from '../services/core/verification/cache.ts';
import { keyFingerprint, loadTrustedRoot } from '../services/core/verification/trust.ts';
import { createSignatureVerifier } from '../services/core/verification/verifier.ts';
import { cosignLayersFromFixture, readFixture } from '../test/helpers/fixtures.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);

/** Calls `fn` in a loop for `seconds` (after a short warm-up); returns calls per second. */
function rate(fn: () => void): number {
  const warm = performance.now() + 300;
  while (performance.now() < warm) {
    fn();
  }
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 10; i++) {
      fn();
    }
    n += 10;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

const DIR = 'cosign/connaisseur-testimage/manifests';
const KEYLESS = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
const KEYED = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');
const aliceKey = createPublicKey(readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8'));
const verifier = createSignatureVerifier(await loadTrustedRoot(DEFAULT_TRUSTED_ROOTS[0]!), [
  { name: 'alice', key: aliceKey, fingerprint: keyFingerprint(aliceKey) },
]);
const keyless = cosignLayersFromFixture(DIR, `sha256-${KEYLESS.slice(7)}.sig.json`)[0]!;
const keyed = cosignLayersFromFixture(DIR, `sha256-${KEYED.slice(7)}.sig.json`)[0]!;
for (const [layer, subject] of [[keyless, KEYLESS], [keyed, KEYED]] as const) {
  const v = verifier.verifyCosignLayer(layer, subject);
  if (v.outcome !== 'verified') {
    throw new Error(`fixture did not verify: ${v.outcome} ${v.reason ?? ''}`);
  }
}

// Yardstick: one ECDSA P-256/SHA-256 verify of a payload the size of a cosign simple-signing one.
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const payload = keyless.payload;
const signature = sign('sha256', payload, privateKey);
const rawEcdsa = rate(() => {
  if (!verify('sha256', payload, publicKey, signature)) {
    throw new Error('raw verify failed');
  }
});
const keylessRate = rate(() => verifier.verifyCosignLayer(keyless, KEYLESS));
const keyRate = rate(() => verifier.verifyCosignLayer(keyed, KEYED));

// Sigstore bundles v0.3 from the sigstore-conformance suite (public-good): a message signature
// (Rekor inclusion proof, checkpoint and SET) and a DSSE in-toto statement (the cosign v3 and
// GitHub attestation shape).
const conformance = (c: string) => readFixture(`sigstore-bundles/conformance/${c}/bundle.sigstore.json`);
const artifact = readFixture('sigstore-bundles/conformance/a.txt');
const artifactDigest = sha256Digest(artifact);
const messageBundle = conformance('happy-path-v0.3');
const dsseBundle = conformance('happy-path-intoto-in-dsse-v3');
const dsseEnvelope = (JSON.parse(dsseBundle.toString('utf8')) as { dsseEnvelope: { payload: string } }).dsseEnvelope;
const dsseStatement = JSON.parse(Buffer.from(dsseEnvelope.payload, 'base64').toString('utf8')) as { subject: { digest: { sha256: string } }[] };
const dsseSubject = `sha256:${dsseStatement.subject[0]!.digest.sha256}` as const;
for (const v of [verifier.verifyBundle(messageBundle, { digest: artifactDigest, bytes: artifact }), verifier.verifyBundle(dsseBundle, { digest: dsseSubject })]) {
  if (v.outcome !== 'verified') {
    throw new Error(`bundle fixture did not verify: ${v.outcome} ${v.reason ?? ''}`);
  }
}
const messageBundleRate = rate(() => verifier.verifyBundle(messageBundle, { digest: artifactDigest, bytes: artifact }));
const dsseBundleRate = rate(() => verifier.verifyBundle(dsseBundle, { digest: dsseSubject }));

// The verification cache: a signature seen again (a re-push, a promotion) costs a hash and a lookup.
const cached = createCachingVerifier(verifier);
cached.verifyCosignLayer(keyless, KEYLESS);
const cacheHitRate = rate(() => cached.verifyCosignLayer(keyless, KEYLESS));

console.log(
  JSON.stringify(
    {
      seconds,
      perCore: {
        rawEcdsaP256VerifiesPerSecond: rawEcdsa,
        keylessVerificationsPerSecond: keylessRate,
        keyVerificationsPerSecond: keyRate,
        bundleV03MessageSignaturesPerSecond: messageBundleRate,
        bundleV03DsseAttestationsPerSecond: dsseBundleRate,
        cacheHitsPerSecond: cacheHitRate,
      },
      ratios: {
        keylessVsRawEcdsa: Number((keylessRate / rawEcdsa).toFixed(3)),
        keyVsRawEcdsa: Number((keyRate / rawEcdsa).toFixed(3)),
        bundleMessageVsRawEcdsa: Number((messageBundleRate / rawEcdsa).toFixed(3)),
        bundleDsseVsRawEcdsa: Number((dsseBundleRate / rawEcdsa).toFixed(3)),
        cacheHitVsRawEcdsa: Number((cacheHitRate / rawEcdsa).toFixed(3)),
        cacheHitVsKeyless: Number((cacheHitRate / keylessRate).toFixed(1)),
      },
    },
    null,
    2,
  ),
);
