import { createPublicKey, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import type { SignedEntity } from '@sigstore/verify';
import { signedEntity } from '../bundle.ts';
import { z } from 'zod';
import type { Digest } from '../../../common/domain/digest.ts';
import {
  COSIGN_ANNOTATION,
  cosignLayerToBundle,
  type CosignLayer,
  layerMaterial,
  parseCertificatePem,
  parseHashedRekordBody,
  type RekorBundle,
  rekorSummary,
  sha256Hex,
} from '../cosign-layer.ts';
import type { Evidence } from '../evidence.ts';
import { Failure } from '../failure.ts';
import type { NormalisedSignature } from '../normalised.ts';

const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';

const SimpleSigningPayload = z.object({
  critical: z.object({
    identity: z.object({ 'docker-reference': z.string() }).partial().optional(),
    image: z.object({ 'docker-manifest-digest': z.string() }),
    type: z.string(),
  }),
  optional: z.record(z.string(), z.unknown()).nullable().optional(),
});

/**
 * Reads a legacy cosign `.sig` layer attached to `subject`: its simple-signing payload, and the
 * certificate or key and Rekor bundle in its annotations, with the checks cosign makes of them.
 */
export function normaliseCosignSignature(layer: CosignLayer, subject: Digest, evidence: Evidence): NormalisedSignature {
  const payload = parsePayload(layer.payload);
  evidence.annotations = payload.optional ?? null;
  const { cert, rekor, body } = layerMaterial(layer, parseHashedRekordBody);
  if (rekor !== null) {
    evidence.rekor = rekorSummary(rekor);
  }
  if (body !== null && body.spec.data.hash.value.toLowerCase() !== sha256Hex(layer.payload)) {
    throw new Failure('invalid_signature', 'the payload is not the one whose digest was logged in Rekor (payload tampered with)');
  }
  const signature = decodeSignature(layer.annotations[COSIGN_ANNOTATION.signature] ?? '');
  // cosign logs the certificate it attaches: then the entry's PEM is the annotation's, already parsed.
  const loggedPem = body === null ? null : Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
  const sameCertificate = cert !== null && loggedPem === layer.annotations[COSIGN_ANNOTATION.certificate];
  const loggedKeys = loggedPem === null ? null : [sameCertificate ? loggedKey(() => cert.publicKey) : loggedKey(() => createPublicKey(loggedPem))];
  const binding = { kind: 'payload', signed: payload.critical.image['docker-manifest-digest'], subject } as const;
  if (cert === null) {
    return { entity: keyEntity(layer, rekor, signature), certificate: null, keyHint: null, loggedKeys, binding };
  }
  evidence.showCertificate(cert);
  if (rekor === null) {
    throw new Failure('tlog_missing', 'keyless signature without a Rekor bundle: nothing proves the certificate was valid when it signed');
  }
  if (!sameCertificate) {
    assertRekorCertificate(loggedPem ?? '', cert);
  }
  // Built after cosign's checks above, so theirs is the outcome recorded when the bundle cannot be.
  const entity = signedEntity(cosignLayerToBundle(layer, { certificate: cert, rekor }), layer.payload);
  return { entity, certificate: cert, keyHint: null, loggedKeys, binding };
}

function keyEntity(layer: CosignLayer, rekor: RekorBundle | null, signature: Buffer): SignedEntity {
  if (rekor === null) {
    return plainKeyEntity(layer.payload, signature);
  }
  const entity = signedEntity(cosignLayerToBundle(layer, { certificate: null, rekor, keyHint: '' }), layer.payload);
  return rawKeyEntity(entity, layer.payload, signature);
}

function parsePayload(bytes: Buffer): z.infer<typeof SimpleSigningPayload> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Failure('malformed', 'the signature payload is not JSON');
  }
  const parsed = SimpleSigningPayload.safeParse(json);
  if (!parsed.success) {
    throw new Failure('malformed', `the signature payload is not a simple-signing payload: ${z.prettifyError(parsed.error)}`);
  }
  if (parsed.data.critical.type !== COSIGN_PAYLOAD_TYPE) {
    throw new Failure('malformed', `the payload type is ${JSON.stringify(parsed.data.critical.type)}, not "${COSIGN_PAYLOAD_TYPE}"`);
  }
  return parsed.data;
}

function decodeSignature(b64: string): Buffer {
  if (b64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new Failure('malformed', `the ${COSIGN_ANNOTATION.signature} annotation is missing or not base64`);
  }
  return Buffer.from(b64, 'base64');
}

function loggedKey(read: () => KeyObject): KeyObject {
  try {
    return read();
  } catch {
    throw new Failure('tlog_invalid', 'the Rekor entry does not carry a usable public key or certificate');
  }
}

/** cosign checks this and sigstore-js does not: the logged entry was made with the signing certificate. */
function assertRekorCertificate(pem: string, cert: X509Certificate): void {
  if (pem.includes('CERTIFICATE') && !parseCertificatePem(pem).raw.equals(cert.raw)) {
    throw new Failure('tlog_invalid', 'the Rekor entry was logged with a different certificate');
  }
}

/** A key-based legacy layer with no Rekor entry: only its signature can be checked (no bundle to build). */
function plainKeyEntity(payload: Buffer, signature: Buffer): SignedEntity {
  return {
    signature: { verifySignature: (key: KeyObject) => cryptoVerify('sha256', payload, key, signature) },
    tlogEntries: [],
    timestamps: [],
  } as unknown as SignedEntity;
}

/**
 * A key-based legacy layer verified with node:crypto: sigstore's message-signature content checks
 * the digest of the payload and the signature, the same as cosign's raw `crypto.verify`.
 */
function rawKeyEntity(entity: SignedEntity, payload: Buffer, signature: Buffer): SignedEntity {
  // Keeps the content's prototype: sigstore calls its other methods (compareDigest, compareSignature).
  const content = Object.create(entity.signature) as SignedEntity['signature'];
  content.verifySignature = (key: KeyObject) => cryptoVerify('sha256', payload, key, signature);
  return { ...entity, signature: content };
}
