import { createHash, createPublicKey, verify } from 'node:crypto';
import { describe, it, expect, beforeAll } from 'vitest';
import { X509Certificate } from '@sigstore/core';
import { PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier, type Signer } from '@sigstore/verify';
import {
  COSIGN_ANNOTATION,
  cosignLayerToBundle,
  parseCertificatePem,
  parseHashedRekordBody,
  parseRekorBundle,
  type CosignLayer,
} from '../../services/core/verification/cosign-layer.ts';
import { derUtf8String } from './fulcio.ts';
import { createTestSigstore, generateTestKey, simpleSigningPayload, type TestKey, type TestSigstore } from './signer.ts';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const PAYLOAD = simpleSigningPayload('registry.test/org/app', DIGEST);
const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const WORKFLOW = 'https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1';

function verifyKeyless(root: Record<string, unknown>, layer: CosignLayer): Signer {
  const bundle = cosignLayerToBundle(layer, {
    certificate: parseCertificatePem(layer.annotations[COSIGN_ANNOTATION.certificate]!),
    rekor: parseRekorBundle(layer.annotations[COSIGN_ANNOTATION.bundle]!),
  });
  return new Verifier(toTrustMaterial(TrustedRoot.fromJSON(root))).verify(toSignedEntity(bundle, layer.payload));
}

function verifyWithKey(root: Record<string, unknown>, layer: CosignLayer, key: TestKey): Signer {
  const bundle = cosignLayerToBundle(layer, {
    certificate: null,
    rekor: parseRekorBundle(layer.annotations[COSIGN_ANNOTATION.bundle]!),
    keyHint: 'cosign.pub',
  });
  const rawBytes = createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' });
  const trust = toTrustMaterial(TrustedRoot.fromJSON(root), {
    'cosign.pub': { rawBytes, keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256 },
  });
  return new Verifier(trust).verify(toSignedEntity(bundle, layer.payload));
}

describe('test signer', () => {
  let sigstore: TestSigstore;
  beforeAll(async () => {
    sigstore = await createTestSigstore();
  });

  it('builds the cosign simple-signing payload byte for byte', () => {
    expect(PAYLOAD.toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"registry.test/org/app"},"image":{"docker-manifest-digest":"${DIGEST}"},` +
        `"type":"cosign container image signature"},"optional":null}`,
    );
    expect(simpleSigningPayload('r', DIGEST, { z: '1', a: '<&>' }).toString()).toMatch(
      /"optional":\{"a":"\\u003c\\u0026\\u003e","z":"1"\}\}$/,
    );
  });

  it('signs keyless with an email identity that verifies against the trusted root', async () => {
    const layer = await sigstore.signKeyless(PAYLOAD, { email: 'alice@example.com', issuer: 'https://accounts.google.com' });

    expect(Object.keys(layer.annotations).sort()).toEqual(Object.values(COSIGN_ANNOTATION).sort());
    const signer = verifyKeyless(sigstore.trustedRoot, layer);
    expect(signer.identity?.subjectAlternativeName).toBe('alice@example.com');
    expect(signer.identity?.extensions?.issuer).toBe('https://accounts.google.com');

    // The Rekor entry records the leaf certificate PEM and the payload hash, as cosign uploads them.
    const rekor = parseRekorBundle(layer.annotations[COSIGN_ANNOTATION.bundle]!);
    const body = parseHashedRekordBody(rekor.Payload.body);
    expect(Buffer.from(body.spec.signature.publicKey.content, 'base64').toString()).toBe(
      layer.annotations[COSIGN_ANNOTATION.certificate]!,
    );
    expect(body.spec.signature.content).toBe(layer.annotations[COSIGN_ANNOTATION.signature]!);
    expect(body.spec.data.hash).toEqual({ algorithm: 'sha256', value: createHash('sha256').update(PAYLOAD).digest('hex') });

    // The chain annotation is intermediate then root, both present in the trusted root.
    const chain = layer.annotations[COSIGN_ANNOTATION.chain]!.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g);
    expect(chain).toHaveLength(2);
    const [ca] = TrustedRoot.fromJSON(sigstore.trustedRoot).certificateAuthorities;
    expect(chain?.map((pem) => parseCertificatePem(pem).raw)).toEqual(ca?.certChain?.certificates.map((c) => c.rawBytes));
  });

  it('signs keyless with a URI identity carrying GitHub claims', async () => {
    const claims = { 9: WORKFLOW, 12: 'https://github.com/org/repo', 14: 'refs/tags/v1' };
    const layer = await sigstore.signKeyless(PAYLOAD, { uri: WORKFLOW, issuer: GITHUB_ISSUER, claims });

    const signer = verifyKeyless(sigstore.trustedRoot, layer);
    expect(signer.identity?.subjectAlternativeName).toBe(WORKFLOW);
    expect(signer.identity?.extensions?.issuer).toBe(GITHUB_ISSUER);
    const oids = new Map(signer.identity?.oids?.map((o) => [o.oid?.id.join('.'), Buffer.from(o.value)]));
    for (const [suffix, value] of Object.entries(claims)) {
      expect(oids.get(`1.3.6.1.4.1.57264.1.${suffix}`)).toEqual(derUtf8String(value));
    }
    expect(oids.get('1.3.6.1.4.1.57264.1.1')).toEqual(Buffer.from(GITHUB_ISSUER));

    const leaf = X509Certificate.parse(layer.annotations[COSIGN_ANNOTATION.certificate]!);
    expect(leaf.extension('1.3.6.1.4.1.57264.1.14')?.valueObj.subs[0]?.value.toString()).toBe('refs/tags/v1');
  });

  it('rejects a signature from another test Sigstore', async () => {
    const other = await createTestSigstore();
    const layer = await other.signKeyless(PAYLOAD, { email: 'mallory@example.com', issuer: 'https://accounts.google.com' });
    expect(() => verifyKeyless(other.trustedRoot, layer)).not.toThrow();
    expect(() => verifyKeyless(sigstore.trustedRoot, layer)).toThrow(/Failed to verify certificate chain/);
  });

  it('rejects a tampered payload', async () => {
    const layer = await sigstore.signKeyless(PAYLOAD, { email: 'alice@example.com', issuer: 'https://accounts.google.com' });
    const tampered = { ...layer, payload: simpleSigningPayload('registry.test/org/app', `sha256:${'cd'.repeat(32)}`) };
    expect(() => verifyKeyless(sigstore.trustedRoot, tampered)).toThrow(/digest mismatch/);
  });

  it('gives every signature a distinct log index', async () => {
    const key = generateTestKey();
    const layers = await Promise.all([
      sigstore.signWithKey(PAYLOAD, key, { tlog: true }),
      sigstore.signWithKey(PAYLOAD, key, { tlog: true }),
      sigstore.signKeyless(PAYLOAD, { email: 'alice@example.com', issuer: 'https://accounts.google.com' }),
    ]);
    const indexes = layers.map((l) => parseRekorBundle(l.annotations[COSIGN_ANNOTATION.bundle]!).Payload.logIndex);
    expect(new Set(indexes).size).toBe(indexes.length);
  });

  it('signs with a key and a tlog entry that verifies as a public-key bundle', async () => {
    const key = generateTestKey();
    const layer = await sigstore.signWithKey(PAYLOAD, key, { tlog: true });

    expect(Object.keys(layer.annotations).sort()).toEqual([COSIGN_ANNOTATION.signature, COSIGN_ANNOTATION.bundle].sort());
    const signer = verifyWithKey(sigstore.trustedRoot, layer, key);
    expect(signer.identity).toBeUndefined();

    const body = parseHashedRekordBody(parseRekorBundle(layer.annotations[COSIGN_ANNOTATION.bundle]!).Payload.body);
    expect(Buffer.from(body.spec.signature.publicKey.content, 'base64').toString()).toBe(key.publicKeyPem);
    expect(key.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);

    expect(() => verifyWithKey(sigstore.trustedRoot, layer, generateTestKey())).toThrow(/signature verification failed/);
  });

  it('signs with a key and no tlog: only a signature annotation, valid for node:crypto', async () => {
    const key = generateTestKey();
    const layer = await sigstore.signWithKey(PAYLOAD, key);

    expect(Object.keys(layer.annotations)).toEqual([COSIGN_ANNOTATION.signature]);
    const signature = Buffer.from(layer.annotations[COSIGN_ANNOTATION.signature]!, 'base64');
    expect(verify('sha256', PAYLOAD, key.publicKeyPem, signature)).toBe(true);
    expect(verify('sha256', Buffer.concat([PAYLOAD, Buffer.from(' ')]), key.publicKeyPem, signature)).toBe(false);
  });

  it('rejects an identity without exactly one SAN', async () => {
    await expect(sigstore.signKeyless(PAYLOAD, { issuer: GITHUB_ISSUER })).rejects.toThrow(/exactly one/);
    await expect(
      sigstore.signKeyless(PAYLOAD, { email: 'a@example.com', uri: WORKFLOW, issuer: GITHUB_ISSUER }),
    ).rejects.toThrow(/exactly one/);
  });
});
