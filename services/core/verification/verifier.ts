import type { KeyObject, X509Certificate } from 'node:crypto';
import type { SignedEntity, Signer } from '@sigstore/verify';
import type { Digest } from '../../common/domain/digest.ts';
import type { SignatureVerdict, SignerIdentity } from '../../common/domain/signature.ts';
import { type CosignLayer, sha256Hex } from './cosign-layer.ts';
import type { FastPathStats } from './fast-certificate.ts';
import { certificateKey, Evidence, type ProvenSigner } from './evidence.ts';
import { classify, Failure } from './failure.ts';
import { normaliseCosignAttestation } from './formats/cosign-attestation.ts';
import { normaliseCosignSignature } from './formats/cosign-signature.ts';
import { type BundleSubject, normaliseBundle } from './formats/sigstore-bundle.ts';
import { decodeFulcioClaims } from './fulcio-claims.ts';
import { assertBoundToSubject, type NormalisedSignature } from './normalised.ts';
import { TrustedRoots } from './roots.ts';
import { keyFingerprint, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';

export type { BundleSubject } from './formats/sigstore-bundle.ts';
export { trustSetVersion } from './roots.ts';

const CODE_SIGNING_EKU = '1.3.6.1.5.5.7.3.3';

/** Identity constraints for a one-off check (e.g. "must be signed by alice@example.com"). */
export interface ExpectedIdentity {
  readonly subject?: string | RegExp;
  readonly issuer?: string | RegExp;
}

/**
 * The checks as the worker runs them: the verdicts of a {@link SignatureVerifier}, given at once
 * (in-process) or later (the verification pool's threads, `pool.ts`). Callers `await` them.
 */
export interface SignatureChecks {
  /** Identifies the trust configuration as a whole (roots and keys): equal versions verify alike. */
  readonly version: string;
  /**
   * Version of the trust configuration: the sha256 of the trusted root file when there is one,
   * else a digest over every root's version. Recorded on signatures that no root verified.
   */
  readonly trustRootVersion: string;
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict | Promise<SignatureVerdict>;
  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict | Promise<SignatureVerdict>;
  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): SignatureVerdict | Promise<SignatureVerdict>;
}

export interface SignatureVerifier extends SignatureChecks {
  /** The roots, in the order they are tried. */
  readonly roots: readonly Pick<LoadedTrustedRoot, 'version' | 'path'>[];
  /** How often the fast keyless certificate step answered and how often sigstore-js did; null when it is off. */
  readonly fastPathStats: FastPathStats | null;
  /**
   * Verifies one legacy cosign layer attached to `subject`. Never throws: every failure is a typed
   * outcome with a reason. Pure CPU work, no I/O.
   */
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict;
  /** Verifies one cosign `.att` layer: `layer.payload` is the DSSE envelope, bound to `subject` by its in-toto subject. */
  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict;
  /**
   * Verifies a serialized Sigstore bundle (v0.1–v0.3) attached to `subject`: a DSSE in-toto
   * statement must name the subject's digest; a message signature must sign the subject's bytes.
   */
  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): SignatureVerdict;
}

/**
 * Builds the verifier once per process from the trusted roots and the operator's trusted keys.
 * Keyless signatures go through `@sigstore/verify` (Fulcio chain at the verified time, SCT, SET or
 * inclusion proof, RFC 3161 timestamps, signature) against each root in turn; key-based ones
 * through the trusted keys, or the key in a Rekor entry. On top of that it does the checks
 * sigstore does not: payload type, subject digest binding, EKU, single DSSE signature, and that
 * the transparency-log entry was made with the signing certificate or key.
 */
export function createSignatureVerifier(
  trust: LoadedTrustedRoot | readonly LoadedTrustedRoot[],
  trustedKeys: readonly TrustedKey[],
  options: { readonly fastPath?: boolean } = {},
): SignatureVerifier {
  const loaded = Array.isArray(trust) ? (trust as readonly LoadedTrustedRoot[]) : [trust as LoadedTrustedRoot];
  return new TrustVerifier(loaded, trustedKeys, options.fastPath ?? true);
}

/**
 * Every format is first read into a {@link NormalisedSignature} (formats/*.ts); then one pipeline
 * proves the signer (certificate or key), checks the subject binding and the expected identity.
 * The order of the steps decides which outcome a signature that fails several checks records.
 */
class TrustVerifier implements SignatureVerifier {
  readonly version: string;
  readonly trustRootVersion: string;
  readonly roots: readonly Pick<LoadedTrustedRoot, 'version' | 'path'>[];
  readonly #trust: TrustedRoots;
  readonly #keys: readonly TrustedKey[];

  constructor(loaded: readonly LoadedTrustedRoot[], trustedKeys: readonly TrustedKey[], fastPath: boolean) {
    this.#trust = new TrustedRoots(loaded, fastPath);
    this.#keys = trustedKeys;
    this.trustRootVersion = this.#trust.version;
    this.version = `sha256:${sha256Hex(Buffer.from([this.trustRootVersion, ...trustedKeys.map((k) => k.fingerprint).sort()].join('\n')))}`;
    this.roots = loaded.map((l) => ({ version: l.version, path: l.path }));
  }

  get fastPathStats(): FastPathStats | null {
    return this.#trust.fastPathStats;
  }

  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#verify(normaliseCosignSignature, layer, subject, expected);
  }

  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#verify(normaliseCosignAttestation, layer, subject, expected);
  }

  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#verify(normaliseBundle, bundle, subject, expected);
  }

  /** The pipeline: read the material, prove the signer, check the subject and the expected identity. */
  #verify<I, S>(
    normalise: (input: I, subject: S, evidence: Evidence) => NormalisedSignature,
    input: I,
    subject: S,
    expected: ExpectedIdentity | undefined,
  ): SignatureVerdict {
    const evidence = new Evidence(this.trustRootVersion);
    try {
      const signed = normalise(input, subject, evidence);
      evidence.signer = signed.certificate === null ? this.#proveKey(signed) : this.#proveCertificate(signed, signed.certificate);
      assertBoundToSubject(signed.binding);
      if (expected !== undefined) {
        assertExpectedIdentity(evidence.signer.identity, expected);
      }
      return evidence.verdict('verified', null);
    } catch (err) {
      const { outcome, reason } = classify(err);
      return evidence.verdict(outcome, reason);
    }
  }

  /** Keyless: a code-signing certificate, the one logged, valid under a trusted root when it signed, naming its signer. */
  #proveCertificate(signed: NormalisedSignature, cert: X509Certificate): ProvenSigner {
    assertCodeSigning(cert);
    assertLoggedWith(signed.loggedKeys, cert.publicKey);
    const { signer, root } = this.#trust.verifyCertificate(signed.entity, cert);
    return {
      identity: certificateIdentity(signer),
      claims: decodeFulcioClaims(signer.identity?.oids),
      key: certificateKey(cert),
      trustRootVersion: root.version,
    };
  }

  /**
   * Key-based: a trusted key whose signature check passes, else the key a Rekor entry names (then
   * the entry's SET/proof must verify).
   */
  #proveKey(signed: NormalisedSignature): ProvenSigner {
    const logged = signed.loggedKeys ?? [];
    const { key, trusted } = this.#resolveKey(signed.entity, logged, signed.keyHint);
    assertLoggedWith(logged.length > 0 ? logged : null, key); // an entry that names no key holds a key to nothing
    const trustRootVersion = this.#provenTime(signed.entity, key);
    const fingerprint = keyFingerprint(key);
    return {
      identity: { kind: 'key', subject: fingerprint, issuer: null },
      claims: {},
      key: { fingerprint, source: trusted === undefined ? 'tlog' : 'trusted_key', name: trusted?.name ?? null },
      trustRootVersion,
    };
  }

  /** The key that signed: a trusted one (those the hint names first), else one the log entry names. */
  #resolveKey(entity: SignedEntity, logged: readonly KeyObject[], hint: string | null): { key: KeyObject; trusted?: TrustedKey } {
    const trusted = this.#keysFor(hint).find((k) => entity.signature.verifySignature(k.key));
    if (trusted !== undefined) {
      return { key: trusted.key, trusted };
    }
    if (logged.length === 0) {
      throw new Failure(
        'untrusted_root',
        this.#keys.length === 0
          ? 'key-based signature, no trusted keys are configured (SIGNET_TRUSTED_KEYS) and it has no Rekor entry'
          : `key-based signature that none of the ${this.#keys.length} trusted keys verifies, and it has no Rekor entry`,
      );
    }
    const key = logged.find((k) => entity.signature.verifySignature(k));
    if (key === undefined) {
      throw new Failure('invalid_signature', 'the signature does not verify with the key logged in Rekor');
    }
    return { key };
  }

  #keysFor(hint: string | null): readonly TrustedKey[] {
    if (hint === null) {
      return this.#keys;
    }
    return [...this.#keys.filter((k) => keyMatchesHint(k, hint)), ...this.#keys.filter((k) => !keyMatchesHint(k, hint))];
  }

  /** A key's log entries and timestamps must verify under a trusted root; returns the root's version. */
  #provenTime(entity: SignedEntity, key: KeyObject): string {
    if (entity.tlogEntries.length === 0 && entity.timestamps.length === 0) {
      return this.trustRootVersion;
    }
    return this.#trust.verifyWithKey(entity, key).version;
  }
}

function assertCodeSigning(cert: X509Certificate): void {
  if (!(cert.keyUsage ?? []).includes(CODE_SIGNING_EKU)) {
    throw new Failure('cert_invalid', 'the signing certificate lacks the codeSigning extended key usage');
  }
}

/** The check sigstore-js does not make: the transparency-log entry was made with the key that signed. */
function assertLoggedWith(logged: readonly KeyObject[] | null, key: KeyObject): void {
  if (logged !== null && !logged.some((k) => k.equals(key))) {
    throw new Failure('tlog_invalid', 'the transparency log entry was logged with a different key than the one that signed');
  }
}

function certificateIdentity(signer: Signer): SignerIdentity {
  const san = signer.identity?.subjectAlternativeName;
  const issuer = signer.identity?.extensions?.issuer ?? null;
  if (san === undefined || san === '') {
    throw new Failure('cert_invalid', 'the signing certificate has no email or URI subject alternative name');
  }
  return { kind: san.includes('://') ? 'uri' : 'email', subject: san, issuer };
}

function keyMatchesHint(key: TrustedKey, hint: string): boolean {
  return hint !== '' && (hint === key.name || hint === key.fingerprint || hint === Buffer.from(key.fingerprint.slice(7), 'hex').toString('base64'));
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
