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
  readonly rekor: { readonly logId: string; readonly logIndex: string; readonly integratedTime: Date } | null;
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
  return { outcome, reason, identity: null, claims: {}, key: null, certificate: null, rekor: null, annotations: null, trustRootVersion };
}

export type SignatureFormat = 'cosign_legacy';

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
  readonly layerAnnotations: Readonly<Record<string, string>>;
  readonly verdict: SignatureVerdict;
}
