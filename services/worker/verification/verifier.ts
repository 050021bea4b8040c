import { createPublicKey, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import type { Bundle } from '@sigstore/bundle';
import {
  PolicyError,
  toSignedEntity,
  toTrustMaterial,
  VerificationError,
  Verifier,
  type Signer,
} from '@sigstore/verify';
import { z } from 'zod';
import type { Digest } from '../../common/domain/digest.ts';
import type { SignatureOutcome } from '../../common/domain/outcome.ts';
import { type SignatureVerdict, type SignerIdentity, unprovenVerdict } from '../../common/domain/signature.ts';
import {
  COSIGN_ANNOTATION,
  cosignLayerToBundle,
  type CosignLayer,
  type HashedRekordBody,
  MalformedSignatureError,
  parseCertificatePem,
  parseHashedRekordBody,
  parseRekorBundle,
  type RekorBundle,
  sha256Hex,
} from './cosign-layer.ts';
import { decodeFulcioClaims } from './fulcio-claims.ts';
import { keyFingerprint, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';

const CODE_SIGNING_EKU = '1.3.6.1.5.5.7.3.3';
const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';

/** Identity constraints for a one-off check (e.g. "must be signed by alice@example.com"). */
export interface ExpectedIdentity {
  readonly subject?: string | RegExp;
  readonly issuer?: string | RegExp;
}

export interface SignatureVerifier {
  /** sha256 of the trusted root file; recorded on every signature. */
  readonly trustRootVersion: string;
  /**
   * Verifies one legacy cosign layer attached to `subject`. Never throws: every failure is a typed
   * outcome with a reason. Pure CPU work, no I/O.
   */
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict;
}

const SimpleSigningPayload = z.object({
  critical: z.object({
    identity: z.object({ 'docker-reference': z.string() }).partial().optional(),
    image: z.object({ 'docker-manifest-digest': z.string() }),
    type: z.string(),
  }),
  optional: z.record(z.string(), z.unknown()).nullable().optional(),
});

class Failure extends Error {
  readonly outcome: SignatureOutcome;
  constructor(outcome: SignatureOutcome, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

/**
 * Builds the verifier once per process from a trusted root and the operator's trusted keys.
 * Keyless signatures go through `@sigstore/verify` (Fulcio chain at the Rekor integrated time, SCT,
 * SET, signature); key-based ones through node:crypto, plus the SET when a Rekor bundle is present.
 * On top of that it does the checks sigstore does not: payload type, subject digest binding, EKU,
 * and that the Rekor entry was made with the signing certificate or key.
 */
export function createSignatureVerifier(trust: LoadedTrustedRoot, trustedKeys: readonly TrustedKey[]): SignatureVerifier {
  const keylessVerifier = new Verifier(toTrustMaterial(trust.root));

  function verifyKeyless(bundle: Bundle, payload: Buffer): Signer {
    return keylessVerifier.verify(toSignedEntity(bundle, payload));
  }

  function verifyKeyWithTlog(bundle: Bundle, payload: Buffer, key: KeyObject): void {
    // The key finder ignores the hint: the key was already chosen (trusted, or the one Rekor logged).
    const material = toTrustMaterial(trust.root, () => ({ publicKey: key, validFor: () => true }));
    new Verifier(material).verify(toSignedEntity(bundle, payload));
  }

  return {
    trustRootVersion: trust.version,
    verifyCosignLayer(layer, subject, expected) {
      let partial: Omit<SignatureVerdict, 'outcome' | 'reason'> = unprovenVerdict('malformed', null, trust.version);
      try {
        const payload = parsePayload(layer.payload);
        partial = { ...partial, annotations: payload.optional ?? null };
        const signatureB64 = layer.annotations[COSIGN_ANNOTATION.signature] ?? '';
        const signature = decodeSignature(signatureB64);
        const certPem = layer.annotations[COSIGN_ANNOTATION.certificate];
        const rekorText = layer.annotations[COSIGN_ANNOTATION.bundle];
        const rekor = rekorText === undefined || rekorText === '' ? null : parseRekorBundle(rekorText);
        const body = rekor === null ? null : parseHashedRekordBody(rekor.Payload.body);
        if (rekor !== null) {
          partial = { ...partial, rekor: rekorSummary(rekor) };
        }
        if (body !== null && body.spec.data.hash.value.toLowerCase() !== sha256Hex(layer.payload)) {
          throw new Failure('invalid_signature', 'the payload is not the one whose digest was logged in Rekor (payload tampered with)');
        }

        if (certPem !== undefined && certPem !== '') {
          const cert = parseCertificatePem(certPem);
          partial = {
            ...partial,
            certificate: {
              fingerprint: `sha256:${sha256Hex(cert.raw)}`,
              notBefore: new Date(cert.validFrom),
              notAfter: new Date(cert.validTo),
            },
            key: { fingerprint: keyFingerprint(cert.publicKey), source: 'certificate', name: null },
          };
          if (rekor === null || body === null) {
            throw new Failure('tlog_missing', 'keyless signature without a Rekor bundle: nothing proves the certificate was valid when it signed');
          }
          assertRekorKeyMatches(body, { cert });
          if (!(cert.keyUsage ?? []).includes(CODE_SIGNING_EKU)) {
            throw new Failure('cert_invalid', 'the signing certificate lacks the codeSigning extended key usage');
          }
          const signer = verifyKeyless(cosignLayerToBundle(layer, { certificate: cert, rekor }), layer.payload);
          const san = signer.identity?.subjectAlternativeName;
          const issuer = signer.identity?.extensions?.issuer ?? null;
          if (san === undefined || san === '') {
            throw new Failure('cert_invalid', 'the signing certificate has no email or URI subject alternative name');
          }
          partial = {
            ...partial,
            identity: { kind: san.includes('://') ? 'uri' : 'email', subject: san, issuer },
            claims: decodeFulcioClaims(signer.identity?.oids),
          };
        } else {
          partial = { ...partial, ...verifyKeyBased(layer, signature, rekor, body) };
        }

        assertBoundToSubject(payload, subject);
        if (expected !== undefined && partial.identity !== null) {
          assertExpectedIdentity(partial.identity, expected);
        }
        return { ...partial, outcome: 'verified', reason: null };
      } catch (err) {
        const { outcome, reason } = classify(err);
        return { ...partial, outcome, reason };
      }
    },
  };

  function verifyKeyBased(
    layer: CosignLayer,
    signature: Buffer,
    rekor: RekorBundle | null,
    body: HashedRekordBody | null,
  ): Pick<SignatureVerdict, 'identity' | 'key'> {
    const trusted = trustedKeys.find((k) => cryptoVerify('sha256', layer.payload, k.key, signature));
    let key: KeyObject;
    let source: 'trusted_key' | 'tlog';
    if (trusted !== undefined) {
      key = trusted.key;
      source = 'trusted_key';
    } else if (rekor !== null && body !== null) {
      key = rekorPublicKey(body);
      source = 'tlog';
      if (!cryptoVerify('sha256', layer.payload, key, signature)) {
        throw new Failure('invalid_signature', 'the signature does not verify with the key logged in Rekor');
      }
    } else {
      throw new Failure(
        'untrusted_root',
        trustedKeys.length === 0
          ? 'key-based signature, no trusted keys are configured (SIGNET_TRUSTED_KEYS) and it has no Rekor entry'
          : `key-based signature that none of the ${trustedKeys.length} trusted keys verifies, and it has no Rekor entry`,
      );
    }
    const fingerprint = keyFingerprint(key);
    if (rekor !== null && body !== null) {
      assertRekorKeyMatches(body, { key });
      verifyKeyWithTlog(cosignLayerToBundle(layer, { certificate: null, rekor, keyHint: fingerprint }), layer.payload, key);
    }
    return {
      identity: { kind: 'key', subject: fingerprint, issuer: null },
      key: { fingerprint, source, name: trusted?.name ?? null },
    };
  }
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

/** The check sigstore cannot do: the payload must name the digest the signature is attached to. */
function assertBoundToSubject(payload: z.infer<typeof SimpleSigningPayload>, subject: Digest): void {
  const signed = payload.critical.image['docker-manifest-digest'];
  if (signed !== subject) {
    throw new Failure('digest_mismatch', `the payload signs ${signed.slice(0, 80)}, not ${subject} (signature copied from another image)`);
  }
}

function rekorPublicKey(body: HashedRekordBody): KeyObject {
  const pem = Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
  try {
    return createPublicKey(pem);
  } catch {
    throw new Failure('tlog_invalid', 'the Rekor entry does not carry a usable public key or certificate');
  }
}

/** cosign checks this and sigstore-js does not: the logged entry was made with the signing cert/key. */
function assertRekorKeyMatches(body: HashedRekordBody, signer: { cert: X509Certificate } | { key: KeyObject }): void {
  const logged = rekorPublicKey(body);
  const signing = 'cert' in signer ? signer.cert.publicKey : signer.key;
  if (!logged.equals(signing)) {
    throw new Failure('tlog_invalid', 'the Rekor entry was logged with a different key than the one that signed');
  }
  if ('cert' in signer) {
    const pem = Buffer.from(body.spec.signature.publicKey.content, 'base64').toString('utf8');
    if (pem.includes('CERTIFICATE') && !parseCertificatePem(pem).raw.equals(signer.cert.raw)) {
      throw new Failure('tlog_invalid', 'the Rekor entry was logged with a different certificate');
    }
  }
}

function assertExpectedIdentity(identity: SignerIdentity, expected: ExpectedIdentity): void {
  const matches = (want: string | RegExp | undefined, got: string | null) =>
    want === undefined || (got !== null && (typeof want === 'string' ? want === got : want.test(got)));
  if (!matches(expected.subject, identity.subject)) {
    throw new Failure('identity_mismatch', `signed by ${identity.subject}, which is not the expected identity`);
  }
  if (!matches(expected.issuer, identity.issuer)) {
    throw new Failure('identity_mismatch', `issued by ${identity.issuer ?? '(none)'}, which is not the expected issuer`);
  }
}

function rekorSummary(rekor: RekorBundle): NonNullable<SignatureVerdict['rekor']> {
  return {
    logId: rekor.Payload.logID,
    logIndex: rekor.Payload.logIndex,
    integratedTime: new Date(Number(rekor.Payload.integratedTime) * 1000),
  };
}

const UNTRUSTED_PATH = new Set(['no trusted certificate path found', 'no valid certificate path found']);

/** Maps whatever verification threw to a stored outcome. Unknown exceptions never verify. */
function classify(err: unknown): { outcome: SignatureOutcome; reason: string } {
  if (err instanceof Failure) {
    return { outcome: err.outcome, reason: err.message };
  }
  if (err instanceof MalformedSignatureError) {
    return { outcome: 'malformed', reason: err.message };
  }
  if (err instanceof PolicyError) {
    return { outcome: 'identity_mismatch', reason: err.message };
  }
  if (err instanceof VerificationError) {
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    const reason = cause === undefined ? `${err.code}: ${err.message}` : `${err.code}: ${err.message}: ${cause}`;
    switch (err.code) {
      case 'SIGNATURE_ERROR':
        return { outcome: 'invalid_signature', reason };
      case 'CERTIFICATE_ERROR':
        return { outcome: UNTRUSTED_PATH.has(cause ?? err.message) ? 'untrusted_root' : 'cert_invalid', reason };
      case 'PUBLIC_KEY_ERROR':
        return { outcome: 'untrusted_root', reason };
      case 'TIMESTAMP_ERROR':
      case 'TLOG_MISSING_INCLUSION_ERROR':
        return { outcome: 'tlog_missing', reason };
      case 'TLOG_ERROR':
      case 'TLOG_INCLUSION_PROOF_ERROR':
      case 'TLOG_INCLUSION_PROMISE_ERROR':
      case 'TLOG_BODY_ERROR':
        return { outcome: 'tlog_invalid', reason };
      case 'NOT_IMPLEMENTED_ERROR':
        return { outcome: 'malformed', reason };
    }
  }
  // e.g. sigstore-js throws a TypeError for some malformed inputs: fail closed.
  return { outcome: 'malformed', reason: `verification failed: ${err instanceof Error ? err.message : String(err)}` };
}

