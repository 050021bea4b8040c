// Bundles, DSSE attestations and several trusted roots, on material made by the offline test
// Sigstore (test/signer): what the worker meets from cosign v3, GitHub and `cosign attest`.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { createTestSigstore, inTotoStatement, type TestSigstore } from '../../../test/signer/signer.ts';
import { COSIGN_SIGN_PREDICATE } from '../../common/domain/signature.ts';
import type { Digest } from '../../common/domain/digest.ts';
import { SLSA_V02, SLSA_V1 } from './bundle.ts';
import type { LoadedTrustedRoot } from './trust.ts';
import { createSignatureVerifier, trustSetVersion, type SignatureVerifier } from './verifier.ts';

const IMAGE = `sha256:${'1'.repeat(64)}` as Digest;
const OTHER = `sha256:${'2'.repeat(64)}` as Digest;
const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const WORKFLOW = {
  uri: 'https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1',
  issuer: 'https://token.actions.githubusercontent.com',
};

const slsaV1 = {
  buildDefinition: {
    buildType: 'https://actions.github.io/buildtypes/workflow/v1',
    externalParameters: { workflow: { ref: 'refs/tags/v1', repository: 'https://github.com/org/app', path: '.github/workflows/release.yml' } },
    resolvedDependencies: [{ uri: 'git+https://github.com/org/app@refs/tags/v1', digest: { gitCommit: 'c0ffee'.padEnd(40, '0') } }],
  },
  runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' }, metadata: { invocationId: 'https://github.com/org/app/actions/runs/1/attempts/1' } },
};
const slsaV02 = {
  builder: { id: 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0' },
  buildType: 'https://github.com/slsa-framework/slsa-github-generator/container@v1',
  invocation: { configSource: { uri: 'git+https://github.com/org/app@refs/heads/main', digest: { sha1: 'a'.repeat(40) }, entryPoint: '.github/workflows/build.yml' } },
};

function loaded(root: Record<string, unknown>, name: string): LoadedTrustedRoot {
  const text = JSON.stringify(root);
  return { root: TrustedRoot.fromJSON(root), version: `sha256:${createHash('sha256').update(text).digest('hex')}`, path: name };
}

describe('Sigstore bundles and attestations from the test Sigstore', () => {
  let sigstore: TestSigstore;
  let stranger: TestSigstore;
  let verifier: SignatureVerifier;

  beforeAll(async () => {
    [sigstore, stranger] = await Promise.all([createTestSigstore(), createTestSigstore()]);
    verifier = createSignatureVerifier(loaded(sigstore.trustedRoot, 'test'), []);
  });

  it('a cosign v3 signature (DSSE bundle, sign/v1 predicate) verifies for its image, with Rekor coordinates from the inclusion proof entry', async () => {
    const bundle = await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE);
    const v = verifier.verifyBundle(bundle, { digest: IMAGE });
    expect(v.reason).toBeNull();
    expect(v.outcome).toBe('verified');
    expect(v.identity).toEqual({ kind: 'email', subject: ALICE.email, issuer: ALICE.issuer });
    expect(v.predicateType).toBe(COSIGN_SIGN_PREDICATE);
    expect(v.rekor?.logIndex).toMatch(/^\d+$/);
    expect(v.rekor?.integratedTime).toBeInstanceOf(Date);
  });

  it('a bundle replayed onto another image is digest_mismatch', async () => {
    const bundle = await sigstore.signDsseBundle(inTotoStatement(OTHER, COSIGN_SIGN_PREDICATE, {}), ALICE);
    const v = verifier.verifyBundle(bundle, { digest: IMAGE });
    expect(v.outcome).toBe('digest_mismatch');
    expect(v.reason).toContain(OTHER);
    // The signer is still shown (claimed), never as verified.
    expect(v.identity?.subject).toBe(ALICE.email);
  });

  it('SLSA v1 provenance from GitHub Actions verifies with builder and source claims beside the Fulcio ones', async () => {
    const bundle = await sigstore.signDsseBundle(inTotoStatement(IMAGE, SLSA_V1, slsaV1), { uri: WORKFLOW.uri, issuer: WORKFLOW.issuer });
    const v = verifier.verifyBundle(bundle, { digest: IMAGE });
    expect(v.reason).toBeNull();
    expect(v.predicateType).toBe(SLSA_V1);
    expect(v.claims).toMatchObject({
      issuer: WORKFLOW.issuer,
      slsaBuilderId: 'https://github.com/actions/runner/github-hosted',
      slsaSourceRepository: 'https://github.com/org/app',
      slsaSourceRef: 'refs/tags/v1',
      slsaSourceDigest: `gitCommit:${'c0ffee'.padEnd(40, '0')}`,
      slsaInvocationId: 'https://github.com/org/app/actions/runs/1/attempts/1',
    });
  });

  it('a message-signature bundle verifies over the manifest bytes, and not over other bytes', async () => {
    const manifest = Buffer.from('{"schemaVersion":2}');
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}` as Digest;
    const bundle = await sigstore.signMessageBundle(manifest, ALICE);
    expect(verifier.verifyBundle(bundle, { digest, bytes: manifest }).reason).toBeNull();
    expect(verifier.verifyBundle(bundle, { digest: IMAGE, bytes: manifest }).outcome).toBe('digest_mismatch');
    const forged = Buffer.from('{"schemaVersion":3}');
    expect(verifier.verifyBundle(bundle, { digest, bytes: forged }).outcome).not.toBe('verified');
  });

  it('a cosign .att attestation (intoto 0.0.2 entry) verifies with SLSA v0.2 claims; replayed onto another image it is digest_mismatch', async () => {
    const layer = await sigstore.attestKeyless(inTotoStatement(IMAGE, SLSA_V02, slsaV02), ALICE);
    const v = verifier.verifyCosignAttestation(layer, IMAGE);
    expect(v.reason).toBeNull();
    expect(v.predicateType).toBe(SLSA_V02);
    expect(v.claims).toMatchObject({
      slsaBuilderId: slsaV02.builder.id,
      slsaSourceRepository: 'https://github.com/org/app',
      slsaSourceRef: 'refs/heads/main',
      slsaSourceDigest: `sha1:${'a'.repeat(40)}`,
    });
    expect(verifier.verifyCosignAttestation(layer, OTHER).outcome).toBe('digest_mismatch');
  });

  it('an .att whose envelope payload was swapped after signing does not verify', async () => {
    const layer = await sigstore.attestKeyless(inTotoStatement(IMAGE, SLSA_V02, slsaV02), ALICE);
    const envelope = JSON.parse(layer.payload.toString('utf8'));
    envelope.payload = Buffer.from(JSON.stringify(inTotoStatement(IMAGE, SLSA_V02, { ...slsaV02, builder: { id: 'evil' } }))).toString('base64');
    const v = verifier.verifyCosignAttestation({ ...layer, payload: Buffer.from(JSON.stringify(envelope)) }, IMAGE);
    expect(v.outcome).not.toBe('verified');
  });

  describe('several trusted roots', () => {
    it('the root that verified is recorded; a signature from no configured root is untrusted_root', async () => {
      const bundle = await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE);
      const both = [loaded(stranger.trustedRoot, 'stranger'), loaded(sigstore.trustedRoot, 'test')];
      const v = createSignatureVerifier(both, []).verifyBundle(bundle, { digest: IMAGE });
      expect(v.reason).toBeNull();
      expect(v.trustRootVersion).toBe(both[1]!.version);
      const strangerOnly = createSignatureVerifier([both[0]!], []).verifyBundle(bundle, { digest: IMAGE });
      expect(strangerOnly.outcome).toBe('untrusted_root');
    });

    it('a failure names the whole set of roots it was tried against', () => {
      const both = [loaded(stranger.trustedRoot, 'stranger'), loaded(sigstore.trustedRoot, 'test')];
      const v = createSignatureVerifier(both, []).verifyBundle(Buffer.from('{}'), { digest: IMAGE });
      expect(v.outcome).toBe('malformed');
      expect(v.trustRootVersion).toBe(trustSetVersion(both));
      expect(v.trustRootVersion).not.toBe(both[0]!.version);
    });
  });

  describe('hostile bundles: a typed malformed outcome with a reason, never verified', () => {
    const cases: [string, () => Promise<Buffer> | Buffer, RegExp][] = [
      ['not JSON', () => Buffer.from('\u0000\u0001garbage'), /not JSON/],
      ['an unknown bundle version', async () => withJson(await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE), (b) => (b.mediaType = 'application/vnd.dev.sigstore.bundle.v9.9+json')), /unsupported bundle media type/],
      ['certificate garbage', async () => withJson(await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE), (b) => (b.verificationMaterial.certificate.rawBytes = Buffer.from('not a certificate').toString('base64'))), /certificate/],
      ['a DSSE payload that is not JSON', async () => withJson(await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE), (b) => (b.dsseEnvelope.payload = Buffer.from('<xml/>').toString('base64'))), /not JSON/],
      ['a DSSE payload type other than in-toto', async () => withJson(await sigstore.signDsseBundle(inTotoStatement(IMAGE, COSIGN_SIGN_PREDICATE, {}), ALICE), (b) => (b.dsseEnvelope.payloadType = 'text/plain')), /payload type/],
      ['a bundle over the size cap', () => Buffer.alloc(2 * 1024 * 1024, 0x20), /limit/],
    ];
    for (const [name, make, reason] of cases) {
      it(name, async () => {
        const v = verifier.verifyBundle(await make(), { digest: IMAGE });
        expect(v.outcome).toBe('malformed');
        expect(v.reason).toMatch(reason);
      });
    }
  });
});

function withJson(bytes: Buffer, edit: (b: any) => void): Buffer {
  const json = JSON.parse(bytes.toString('utf8'));
  edit(json);
  return Buffer.from(JSON.stringify(json));
}
