import type { Digest } from './digest.ts';
import type { SignatureOutcome } from './outcome.ts';

export interface SignerIdentity {
  readonly kind: 'email' | 'uri' | 'key';
  /** SAN for certificates; `sha256:<hex>` key fingerprint for keys. */
  readonly subject: string;
  /** OIDC issuer for certificates; null for keys. */
  readonly issuer: string | null;
}

/** What verifying one signature proved (or failed to prove). All of it is stored in the ledger. */
export interface SignatureVerdict {
  readonly outcome: SignatureOutcome;
  readonly reason: string | null;
  readonly identity: SignerIdentity | null;
  /** Named Fulcio certificate claims (issuer, sourceRepositoryUri, buildSignerUri, …). */
  readonly claims: Readonly<Record<string, string>>;
  readonly key: {
    readonly fingerprint: string;
    readonly source: 'certificate' | 'trusted_key' | 'tlog';
    readonly name: string | null;
  } | null;
  readonly certificate: { readonly fingerprint: string; readonly notBefore: Date; readonly notAfter: Date } | null;
  /** Rekor entry: log id (hex), 64-bit log index as a decimal string, integrated time. */
  readonly rekor: { readonly logId: string; readonly logIndex: string; readonly integratedTime: Date | null } | null;
  /** Signing time from an RFC 3161 timestamp authority, when the material carries one (Rekor v2, GitHub). */
  readonly tsaTime: Date | null;
  /** The in-toto predicate type of a DSSE statement (attestations, cosign v3 signatures); null otherwise. */
  readonly predicateType: string | null;
  /** The `optional` section of the signed payload (cosign `-a key=value` annotations). */
  readonly annotations: Readonly<Record<string, unknown>> | null;
  readonly trustRootVersion: string;
}

/** A verdict that proves nothing: no identity, key, certificate or Rekor entry. */
export function unprovenVerdict(
  outcome: SignatureOutcome,
  reason: string | null,
  trustRootVersion: string,
): SignatureVerdict {
  return {
    outcome,
    reason,
    identity: null,
    claims: {},
    key: null,
    certificate: null,
    rekor: null,
    tsaTime: null,
    predicateType: null,
    annotations: null,
    trustRootVersion,
  };
}

/**
 * Where a signature came from: a cosign `.sig` layer, a cosign `.att` layer (DSSE in-toto), or a
 * Sigstore bundle (an OCI 1.1 referrer, cosign v3 and GitHub artifact attestations).
 */
export type SignatureFormat = 'cosign_legacy' | 'cosign_attestation' | 'sigstore_bundle';

/**
 * A signature vouches for the image and counts for ownership and admission; an attestation states
 * something about it (provenance, SBOM) and is recorded, not counted.
 */
export type SignatureKind = 'signature' | 'attestation';

/**
 * How Signet saw a signature's artifact gone (deleted, or no longer what its tag or the referrers
 * name): a delete notification for it, a push or re-index that no longer found it, a crawl.
 */
export type WithdrawalCause = 'delete' | 'reindex' | 'crawl';

/** The predicate cosign v3 wraps a plain image signature in. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

export function signatureKind(format: SignatureFormat, predicateType: string | null): SignatureKind {
  if (format === 'cosign_attestation') {
    return 'attestation';
  }
  return predicateType === null || predicateType === COSIGN_SIGN_PREDICATE ? 'signature' : 'attestation';
}

/**
 * The signature artifacts one discovery read for a manifest, so that what the ledger holds for it
 * and discovery no longer finds can be withdrawn.
 */
export interface SignatureSources {
  /** Found where clients look for them: the `.sig` and `.att` tags, the referrers (API or tag schema). */
  readonly listed: readonly Digest[];
  /** Read only because a notification named them by digest: their tag or referrers list may not name them (yet). */
  readonly pushed: readonly Digest[];
  /**
   * Every place was read in full, so what was not found is not there. False when a source was
   * unusable or a bound cut the reading short: then nothing is withdrawn.
   */
  readonly complete: boolean;
}

/** A signature found on a manifest, with its raw material so it can be re-verified later. */
export interface SignatureRecord {
  readonly format: SignatureFormat;
  /** sha256 over the material; one ledger row per distinct signature. */
  readonly materialDigest: Digest;
  /** The artifact the signature came from (the `.sig` manifest). */
  readonly sourceDigest: Digest;
  readonly layerIndex: number;
  readonly layerDigest: string;
  readonly payload: Buffer;
  /** For a message-signature bundle, the manifest bytes it signs (needed to re-verify it offline). */
  readonly subjectBytes: Buffer | null;
  readonly layerAnnotations: Readonly<Record<string, string>>;
  readonly verdict: SignatureVerdict;
}
