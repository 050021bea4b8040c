import { createPublicKey, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import type { SignedEntity } from '@sigstore/verify';
import { z } from 'zod';
import { COSIGN_ANNOTATION, type HashedRekordBody, parseCertificatePem } from '../cosign-layer.ts';
import { Failure } from '../failure.ts';

const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';

const SimpleSigningPayload = z.object({
  critical: z.object({
    identity: z.object({ 'docker-reference': z.string() }).partial().optional(),
    image: z.object({ 'docker-manifest-digest': z.string() }),
    type: z.string(),
  }),
  optional: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type SimpleSigningPayload = z.infer<typeof SimpleSigningPayload>;

export function parsePayload(bytes: Buffer): SimpleSigningPayload {
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

export function decodeSignature(b64: string): Buffer {
  if (b64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new Failure('malformed', `the ${COSIGN_ANNOTATION.signature} annotation is missing or not base64`);
  }
  return Buffer.from(b64, 'base64');
}

export function rekorPublicKey(body: HashedRekordBody): KeyObject {
  const pem = Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
  try {
    return createPublicKey(pem);
  } catch {
    throw new Failure('tlog_invalid', 'the Rekor entry does not carry a usable public key or certificate');
  }
}

/** cosign checks this and sigstore-js does not: the logged entry was made with the signing certificate. */
export function assertRekorCertificate(body: HashedRekordBody | null, cert: X509Certificate): void {
  const pem = body === null ? '' : Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
  if (pem.includes('CERTIFICATE') && !parseCertificatePem(pem).raw.equals(cert.raw)) {
    throw new Failure('tlog_invalid', 'the Rekor entry was logged with a different certificate');
  }
}

/** A key-based legacy layer with no Rekor entry: only its signature can be checked (no bundle to build). */
export function plainKeyEntity(payload: Buffer, signature: Buffer): SignedEntity {
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
export function rawKeyEntity(entity: SignedEntity, payload: Buffer, signature: Buffer): SignedEntity {
  // Keeps the content's prototype: sigstore calls its other methods (compareDigest, compareSignature).
  const content = Object.create(entity.signature) as SignedEntity['signature'];
  content.verifySignature = (key: KeyObject) => cryptoVerify('sha256', payload, key, signature);
  return { ...entity, signature: content };
}
