import { createHash, X509Certificate } from 'node:crypto';
import { bundleFromJSON, BUNDLE_V01_MEDIA_TYPE, type Bundle } from '@sigstore/bundle';
import { z } from 'zod';
import type { SignatureVerdict } from '../../common/domain/signature.ts';

/** Annotation keys cosign writes on each layer of a `sha256-<hex>.sig` manifest. */
export const COSIGN_ANNOTATION = {
  signature: 'dev.cosignproject.cosign/signature',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
  bundle: 'dev.sigstore.cosign/bundle',
} as const;

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** Media type of the layers of a cosign `.att` manifest: one DSSE envelope each. */
export const DSSE_ENVELOPE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
/** cosign's annotation naming an attestation layer's predicate type. */
export const PREDICATE_TYPE_ANNOTATION = 'predicateType';

/** One signature as cosign stores it: the simple-signing payload and the layer's annotations. */
export interface CosignLayer {
  readonly payload: Buffer;
  readonly annotations: Readonly<Record<string, string>>;
}

/** The layer cannot be interpreted at all (bad base64, bad JSON, missing fields). */
export class MalformedSignatureError extends Error {
  override readonly name = 'MalformedSignatureError';
}

const RekorBundle = z.object({
  SignedEntryTimestamp: z.base64().min(1),
  Payload: z.object({
    body: z.base64().min(1),
    // Kept as decimal strings: log indexes are 64-bit and must not pass through a double.
    integratedTime: z.string().regex(/^\d{1,19}$/),
    logIndex: z.string().regex(/^\d{1,19}$/),
    logID: z.string().regex(/^[0-9a-f]{64}$/),
  }),
});
export type RekorBundle = z.infer<typeof RekorBundle>;

const HashedRekordBody = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  spec: z.object({
    signature: z.object({
      content: z.string(),
      publicKey: z.object({ content: z.base64() }),
    }),
    data: z.object({ hash: z.object({ algorithm: z.string(), value: z.string() }) }),
  }),
});
export type HashedRekordBody = z.infer<typeof HashedRekordBody>;

/**
 * Parses the `dev.sigstore.cosign/bundle` annotation. Numbers are read from their source text
 * (JSON.parse source access) so a 64-bit log index survives exactly.
 */
export function parseRekorBundle(text: string): RekorBundle {
  let raw: unknown;
  try {
    raw = JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
      typeof value === 'number' && context?.source !== undefined ? context.source : value,
    );
  } catch (err) {
    throw new MalformedSignatureError('the Rekor bundle annotation is not JSON', { cause: err });
  }
  const parsed = RekorBundle.safeParse(raw);
  if (!parsed.success) {
    throw new MalformedSignatureError(`the Rekor bundle annotation is invalid: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Decodes the canonicalized Rekor entry body; only `hashedrekord` entries are meaningful for cosign signatures. */
export function parseHashedRekordBody(bodyB64: string): HashedRekordBody {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bodyB64, 'base64').toString('utf8'));
  } catch (err) {
    throw new MalformedSignatureError('the Rekor entry body is not JSON', { cause: err });
  }
  const parsed = HashedRekordBody.safeParse(raw);
  if (!parsed.success || parsed.data.kind !== 'hashedrekord') {
    throw new MalformedSignatureError('the Rekor entry is not a hashedrekord entry');
  }
  return parsed.data;
}

/** Parses a PEM certificate with node:crypto; throws {@link MalformedSignatureError}. */
export function parseCertificatePem(pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new MalformedSignatureError('the certificate annotation is not a PEM X.509 certificate', { cause: err });
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Converts a legacy cosign layer into a Sigstore bundle v0.1 (the only version that accepts a
 * SET-only tlog entry), as `notes/sigstore.md` §4 describes. With a certificate the bundle is
 * keyless; otherwise `keyHint` names the public key that the verifier's key finder resolves.
 */
export function cosignLayerToBundle(
  layer: CosignLayer,
  opts: { certificate: X509Certificate | null; rekor: RekorBundle | null; keyHint?: string },
): Bundle {
  const signature = layer.annotations[COSIGN_ANNOTATION.signature];
  if (signature === undefined || signature.length === 0) {
    throw new MalformedSignatureError(`the layer has no ${COSIGN_ANNOTATION.signature} annotation`);
  }
  return v01Bundle(opts.certificate, opts.rekor, opts.keyHint, {
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(layer.payload).digest('base64') },
      signature,
    },
  });
}

/** A DSSE envelope as cosign stores it in a `.att` layer (payload and signatures base64). */
export interface DsseEnvelopeJson {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid?: string | undefined; readonly sig: string }[];
}

/**
 * Converts a cosign `.att` layer (DSSE envelope plus certificate and Rekor bundle annotations)
 * into a v0.1 DSSE bundle. The Rekor entry is whatever cosign logged (`intoto` 0.0.2 or `dsse`).
 */
export function cosignAttestationToBundle(envelope: DsseEnvelopeJson, certificate: X509Certificate | null, rekor: RekorBundle | null): Bundle {
  return v01Bundle(certificate, rekor, '', {
    dsseEnvelope: {
      payloadType: envelope.payloadType,
      payload: envelope.payload,
      signatures: envelope.signatures.map((s) => ({ keyid: s.keyid ?? '', sig: s.sig })),
    },
  });
}

function v01Bundle(certificate: X509Certificate | null, rekor: RekorBundle | null, keyHint: string | undefined, content: Record<string, unknown>): Bundle {
  const tlogEntries =
    rekor === null
      ? []
      : [
          {
            logIndex: rekor.Payload.logIndex,
            logId: { keyId: Buffer.from(rekor.Payload.logID, 'hex').toString('base64') },
            kindVersion: kindVersionOf(rekor.Payload.body),
            integratedTime: rekor.Payload.integratedTime,
            inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
            canonicalizedBody: rekor.Payload.body,
          },
        ];
  const verificationMaterial =
    certificate !== null
      ? { x509CertificateChain: { certificates: [{ rawBytes: certificate.raw.toString('base64') }] }, tlogEntries }
      : { publicKey: { hint: keyHint ?? '' }, tlogEntries };
  try {
    return bundleFromJSON({
      mediaType: BUNDLE_V01_MEDIA_TYPE,
      verificationMaterial: { ...verificationMaterial, timestampVerificationData: undefined },
      ...content,
    });
  } catch (err) {
    throw new MalformedSignatureError(`cannot build a Sigstore bundle from the layer: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function kindVersionOf(bodyB64: string): { kind: string; version: string } {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bodyB64, 'base64').toString('utf8'));
  } catch (err) {
    throw new MalformedSignatureError('the Rekor entry body is not JSON', { cause: err });
  }
  const { kind, apiVersion } = (body ?? {}) as { kind?: unknown; apiVersion?: unknown };
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
    throw new MalformedSignatureError('the Rekor entry body has no kind and apiVersion');
  }
  return { kind, version: apiVersion };
}

export function layerMaterial<B>(
  layer: CosignLayer,
  parseBody: ((b64: string) => B) | null,
): { cert: X509Certificate | null; rekor: RekorBundle | null; body: B | null } {
  const certPem = layer.annotations[COSIGN_ANNOTATION.certificate];
  const rekorText = layer.annotations[COSIGN_ANNOTATION.bundle];
  const rekor = rekorText === undefined || rekorText === '' ? null : parseRekorBundle(rekorText);
  return {
    cert: certPem === undefined || certPem === '' ? null : parseCertificatePem(certPem),
    rekor,
    body: rekor === null || parseBody === null ? null : parseBody(rekor.Payload.body),
  };
}

export function rekorSummary(rekor: RekorBundle): NonNullable<SignatureVerdict['rekor']> {
  return {
    logId: rekor.Payload.logID,
    logIndex: rekor.Payload.logIndex,
    integratedTime: new Date(Number(rekor.Payload.integratedTime) * 1000),
  };
}
