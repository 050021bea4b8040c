import { createPublicKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDigest, sha256Digest, type Digest } from '../../common/domain/digest.ts';
import {
  cosignLayerFromContainersImage,
  cosignLayersFromFixture,
  fixturePath,
  readFixture,
} from '../../../test/helpers/fixtures.ts';
import { COSIGN_ANNOTATION, type CosignLayer } from './cosign-layer.ts';
import { loadTrustedRoot, type LoadedTrustedRoot, type TrustedKey, keyFingerprint } from './trust.ts';
import { createSignatureVerifier, type SignatureVerifier } from './verifier.ts';

const CONNAISSEUR = 'cosign/connaisseur-testimage/manifests';
const KEYLESS_SUBJECT = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
const ALICE_SUBJECT = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');
const TRIO_SUBJECT = parseDigest('sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533');
const SERVER_IMAGE_SUBJECT = parseDigest('sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321');
const SECUREBUILD_SUBJECT = parseDigest('sha256:a2b109fb9baea555556561317fdd13cef9c3dfac22c8f8fea0c5a0b06ece9d00');

function key(name: string, rel: string): TrustedKey {
  const k = createPublicKey(readFixture(rel).toString('utf8'));
  return { name, key: k, fingerprint: keyFingerprint(k) };
}

const alice = () => key('alice', 'cosign/connaisseur-testimage/keys/alice.pub');
const bob = () => key('bob', 'cosign/connaisseur-testimage/keys/bob.pub');

const keylessLayer = () => cosignLayersFromFixture(CONNAISSEUR, `sha256-${KEYLESS_SUBJECT.slice(7)}.sig.json`)[0]!;
const serverImageLayer = () =>
  cosignLayersFromFixture('cosign/salrashid123-server_image', `sha256-${SERVER_IMAGE_SUBJECT.slice(7)}.sig.json`)[0]!;

function manifestDigest(rel: string): Digest {
  return sha256Digest(readFixture(rel));
}

describe('verifyCosignLayer', () => {
  let publicGood: LoadedTrustedRoot;
  let verifier: SignatureVerifier;

  beforeAll(async () => {
    publicGood = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    verifier = createSignatureVerifier(publicGood, []);
  });

  describe('when the signature is keyless (Fulcio + Rekor)', () => {
    it('verifies the connaisseur signature as its GitHub-OAuth email identity', () => {
      const v = verifier.verifyCosignLayer(keylessLayer(), KEYLESS_SUBJECT);
      expect(v.reason).toBeNull();
      expect(v.outcome).toBe('verified');
      expect(v.identity).toEqual({
        kind: 'email',
        subject: 'philipp.belitz@securesystems.de',
        issuer: 'https://github.com/login/oauth',
      });
      expect(v.rekor).toEqual({
        logId: 'c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d',
        logIndex: '98235800',
        integratedTime: new Date(1717082297 * 1000),
      });
      expect(v.key?.source).toBe('certificate');
      expect(v.certificate?.notBefore.toISOString()).toBe('2024-05-30T15:18:10.000Z');
      expect(v.trustRootVersion).toMatch(/^sha256:[0-9a-f]{64}$/);
    });

    it('reports identity_mismatch when bob@gmail.com is required', () => {
      const v = verifier.verifyCosignLayer(keylessLayer(), KEYLESS_SUBJECT, {
        subject: 'bob@gmail.com',
        issuer: /google/,
      });
      expect(v.outcome).toBe('identity_mismatch');
      expect(v.identity?.subject).toBe('philipp.belitz@securesystems.de');
    });

    it('verifies the salrashid123 server_image signature as its GitHub Actions workflow, with Fulcio claims', () => {
      const v = verifier.verifyCosignLayer(serverImageLayer(), SERVER_IMAGE_SUBJECT, {
        subject: /^https:\/\/github\.com\//,
        issuer: 'https://token.actions.githubusercontent.com',
      });
      expect(v.outcome).toBe('verified');
      expect(v.identity).toEqual({
        kind: 'uri',
        subject: 'https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/release.yaml@refs/tags/v0.0.30',
        issuer: 'https://token.actions.githubusercontent.com',
      });
      expect(v.rekor?.logIndex).toBe('1004096555');
      expect(v.claims).toMatchObject({
        issuer: 'https://token.actions.githubusercontent.com',
        sourceRepositoryUri: 'https://github.com/salrashid123/go-bazel-github-workflow',
        sourceRepositoryRef: 'refs/tags/v0.0.30',
        runnerEnvironment: 'github-hosted',
      });
    });

    it('verifies containers/image keyless signature (mitr@redhat.com) against its own manifest', () => {
      const dir = 'cosign/containers-image/dir-img-cosign-fulcio-rekor-valid';
      const v = verifier.verifyCosignLayer(cosignLayerFromContainersImage(`${dir}/signature-1`), manifestDigest(`${dir}/manifest.json`));
      expect(v.outcome).toBe('verified');
      expect(v.identity).toMatchObject({ subject: 'mitr@redhat.com', issuer: 'https://github.com/login/oauth' });
      expect(v.rekor?.logIndex).toBe('11605770');
    });

    it('reports digest_mismatch for a valid signature attached to another image', () => {
      const v = verifier.verifyCosignLayer(serverImageLayer(), KEYLESS_SUBJECT);
      expect(v.outcome).toBe('digest_mismatch');
      expect(v.identity?.subject).toContain('go-bazel-github-workflow');
    });

    it('reports invalid_signature for a tampered payload', () => {
      const layer = keylessLayer();
      const tampered = Buffer.from(layer.payload.toString('utf8').replace('rekor-test', 'rekor-evil'));
      const v = verifier.verifyCosignLayer({ ...layer, payload: tampered }, KEYLESS_SUBJECT);
      expect(v.outcome).toBe('invalid_signature');
    });

    it('reports invalid_signature when the signature bytes are swapped for another valid signature', () => {
      const layer = keylessLayer();
      const other = serverImageLayer().annotations[COSIGN_ANNOTATION.signature]!;
      const v = verifier.verifyCosignLayer(
        { ...layer, annotations: { ...layer.annotations, [COSIGN_ANNOTATION.signature]: other } },
        KEYLESS_SUBJECT,
      );
      expect(v.outcome).not.toBe('verified');
    });

    it('reports untrusted_root under a trusted root that does not hold the public-good Fulcio CA', async () => {
      const github = createSignatureVerifier(await loadTrustedRoot(fixturePath('trust-roots/github-trusted-root.json')), []);
      const v = github.verifyCosignLayer(keylessLayer(), KEYLESS_SUBJECT);
      expect(v.outcome).toBe('untrusted_root');
      // Names the issuing CA, where trust is configured and how to add it; sigstore's own words last.
      expect(v.reason).toBe(
        `the certificate was issued by "O=sigstore.dev, CN=sigstore-intermediate", which chains to none of the trusted roots (SIGNET_TRUSTED_ROOT: ${fixturePath('trust-roots/github-trusted-root.json')}); if that CA is yours, add its trusted_root.json to SIGNET_TRUSTED_ROOT (CERTIFICATE_ERROR: Failed to verify certificate chain: no valid certificate path found)`,
      );
    });

    it('reports tlog_missing when the Rekor bundle annotation is removed', () => {
      const { [COSIGN_ANNOTATION.bundle]: _dropped, ...annotations } = keylessLayer().annotations;
      const v = verifier.verifyCosignLayer({ ...keylessLayer(), annotations }, KEYLESS_SUBJECT);
      expect(v.outcome).toBe('tlog_missing');
    });

    it('reports tlog_invalid when the Rekor SET does not cover the entry (log index altered)', () => {
      const layer = keylessLayer();
      const rekor = JSON.parse(layer.annotations[COSIGN_ANNOTATION.bundle]!) as { Payload: { logIndex: number } };
      rekor.Payload.logIndex += 1;
      const v = verifier.verifyCosignLayer(
        { ...layer, annotations: { ...layer.annotations, [COSIGN_ANNOTATION.bundle]: JSON.stringify(rekor) } },
        KEYLESS_SUBJECT,
      );
      expect(v.outcome).toBe('tlog_invalid');
    });

    it('reports malformed for garbage annotations instead of throwing', () => {
      const cases: CosignLayer[] = [
        { payload: Buffer.from('not json'), annotations: keylessLayer().annotations },
        { ...keylessLayer(), annotations: { ...keylessLayer().annotations, [COSIGN_ANNOTATION.certificate]: 'junk' } },
        { ...keylessLayer(), annotations: { ...keylessLayer().annotations, [COSIGN_ANNOTATION.bundle]: '{"x":1}' } },
        { ...keylessLayer(), annotations: {} },
      ];
      for (const layer of cases) {
        expect(verifier.verifyCosignLayer(layer, KEYLESS_SUBJECT).outcome).toBe('malformed');
      }
    });
  });

  describe('when the signature is key-based', () => {
    it('verifies multi-cosigned-alice with alice trusted, and not with only bob trusted', () => {
      const [layer] = cosignLayersFromFixture(CONNAISSEUR, `sha256-${ALICE_SUBJECT.slice(7)}.sig.json`);
      const withAlice = createSignatureVerifier(publicGood, [alice(), bob()]).verifyCosignLayer(layer!, ALICE_SUBJECT);
      expect(withAlice.outcome).toBe('verified');
      expect(withAlice.key).toEqual({ fingerprint: alice().fingerprint, source: 'trusted_key', name: 'alice' });
      expect(withAlice.identity).toEqual({ kind: 'key', subject: alice().fingerprint, issuer: null });
      expect(withAlice.rekor).toBeNull();

      const onlyBob = createSignatureVerifier(publicGood, [bob()]).verifyCosignLayer(layer!, ALICE_SUBJECT);
      expect(onlyBob.outcome).toBe('untrusted_root');
    });

    it('verifies alice and bob on the alice-bob-charlie image and leaves charlie untrusted', () => {
      const layers = cosignLayersFromFixture(CONNAISSEUR, `sha256-${TRIO_SUBJECT.slice(7)}.sig.json`);
      const v = createSignatureVerifier(publicGood, [alice(), bob()]);
      expect(layers.map((l) => v.verifyCosignLayer(l, TRIO_SUBJECT).outcome)).toEqual([
        'verified',
        'verified',
        'untrusted_root',
      ]);
      expect(layers.map((l) => v.verifyCosignLayer(l, TRIO_SUBJECT).key?.name ?? null)).toEqual(['alice', 'bob', null]);
    });

    it('reports untrusted_root when no keys are configured and there is no Rekor entry', () => {
      const [layer] = cosignLayersFromFixture(CONNAISSEUR, `sha256-${ALICE_SUBJECT.slice(7)}.sig.json`);
      const v = verifier.verifyCosignLayer(layer!, ALICE_SUBJECT);
      expect(v.outcome).toBe('untrusted_root');
      expect(v.reason).toContain('no trusted keys');
    });

    it('verifies the KMS-key layer and the keyless layer of the securebuild-bazel signature', () => {
      const layers = cosignLayersFromFixture(
        'cosign/salrashid123-securebuild-bazel',
        `sha256-${SECUREBUILD_SUBJECT.slice(7)}.sig.json`,
      );
      const v = createSignatureVerifier(publicGood, [key('kms', 'cosign/salrashid123-securebuild-bazel/kms_pub.pem')]);
      const [kms, keyless] = layers.map((l) => v.verifyCosignLayer(l, SECUREBUILD_SUBJECT));
      expect(kms).toMatchObject({ outcome: 'verified', key: { source: 'trusted_key', name: 'kms' } });
      expect(kms?.annotations).toEqual({ key1: 'value1' });
      expect(keyless).toMatchObject({
        outcome: 'verified',
        identity: {
          kind: 'email',
          subject: 'cosign-svc-account@mineral-minutia-820.iam.gserviceaccount.com',
          issuer: 'https://accounts.google.com',
        },
        rekor: { logIndex: '19941761' },
      });
    });

    it('verifies a key signature with a Rekor SET (containers/image key-rekor-valid), with or without the key trusted', () => {
      const dir = 'cosign/containers-image/dir-img-cosign-key-rekor-valid';
      const layer = cosignLayerFromContainersImage(`${dir}/signature-1`);
      const subject = manifestDigest(`${dir}/manifest.json`);
      const trusted = createSignatureVerifier(publicGood, [key('cosign2', 'cosign/containers-image/cosign2.pub')]);
      expect(trusted.verifyCosignLayer(layer, subject)).toMatchObject({
        outcome: 'verified',
        key: { source: 'trusted_key', name: 'cosign2' },
        rekor: { logIndex: '11608800' },
      });
      // Not trusted, but logged in Rekor: verified as "whoever holds this key", source tlog.
      expect(verifier.verifyCosignLayer(layer, subject)).toMatchObject({
        outcome: 'verified',
        key: { source: 'tlog', fingerprint: key('x', 'cosign/containers-image/cosign2.pub').fingerprint },
      });
    });

    it('reports tlog_invalid when the SET is garbled', () => {
      const dir = 'cosign/containers-image/dir-img-cosign-key-rekor-valid';
      const layer = cosignLayerFromContainersImage(`${dir}/signature-1`);
      const rekor = JSON.parse(layer.annotations[COSIGN_ANNOTATION.bundle]!) as { SignedEntryTimestamp: string };
      rekor.SignedEntryTimestamp = Buffer.from('garbage').toString('base64');
      const v = verifier.verifyCosignLayer(
        { ...layer, annotations: { ...layer.annotations, [COSIGN_ANNOTATION.bundle]: JSON.stringify(rekor) } },
        manifestDigest(`${dir}/manifest.json`),
      );
      expect(v.outcome).toBe('tlog_invalid');
    });

    it('rejects the containers/image signature replayed onto a modified manifest as digest_mismatch', () => {
      const v = createSignatureVerifier(publicGood, [key('cosign', 'cosign/containers-image/cosign.pub')]).verifyCosignLayer(
        cosignLayerFromContainersImage('cosign/containers-image/dir-img-cosign-modified-manifest/signature-1'),
        manifestDigest('cosign/containers-image/dir-img-cosign-modified-manifest/manifest.json'),
      );
      expect(v.outcome).toBe('digest_mismatch');
    });
  });
});
