import type { X509Certificate } from 'node:crypto';
import type { SignatureOutcome } from '../../common/domain/outcome.ts';
import type { SignatureVerdict, SignerIdentity } from '../../common/domain/signature.ts';
import { type InTotoStatement, slsaClaims } from './bundle.ts';
import { sha256Hex } from './cosign-layer.ts';
import { certificateKeyFingerprint } from './trust.ts';

type VerdictKey = NonNullable<SignatureVerdict['key']>;

/** What a trusted root or key proved about the signer. */
export interface ProvenSigner {
  readonly identity: SignerIdentity;
  /** Named Fulcio certificate claims; none for a key. */
  readonly claims: Readonly<Record<string, string>>;
  readonly key: VerdictKey;
  /** The root that verified, or the set's version when none had to. */
  readonly trustRootVersion: string;
}

/**
 * What the verdict shows, gathered as the material is read and the signer proven: a failure
 * shows everything read before it (the claimed signer of a replayed signature, say), and never
 * an identity that was not proven.
 */
export class Evidence {
  rekor: SignatureVerdict['rekor'] = null;
  tsaTime: Date | null = null;
  predicateType: string | null = null;
  /** The `optional` section of a simple-signing payload. */
  annotations: SignatureVerdict['annotations'] = null;
  /** What a signed in-toto statement claims (SLSA provenance), shown beside the certificate's claims. */
  statementClaims: Readonly<Record<string, string>> = {};
  certificate: SignatureVerdict['certificate'] = null;
  key: SignatureVerdict['key'] = null;
  signer: ProvenSigner | null = null;
  readonly #trustSetVersion: string;

  constructor(trustSetVersion: string) {
    this.#trustSetVersion = trustSetVersion;
  }

  /** The signing certificate and its key, as claimed: shown from here on, proven or not (both or neither). */
  showCertificate(cert: X509Certificate): void {
    const certificate = { fingerprint: `sha256:${sha256Hex(cert.raw)}`, notBefore: cert.validFromDate, notAfter: cert.validToDate };
    const key = certificateKey(cert);
    this.certificate = certificate;
    this.key = key;
  }

  /** A signed in-toto statement's predicate type and the claims read from it (both or neither). */
  showStatement(statement: InTotoStatement): void {
    const claims = slsaClaims(statement);
    this.predicateType = statement.predicateType;
    this.statementClaims = claims;
  }

  verdict(outcome: SignatureOutcome, reason: string | null): SignatureVerdict {
    return {
      outcome,
      reason,
      identity: this.signer?.identity ?? null,
      claims: { ...this.signer?.claims, ...this.statementClaims },
      key: this.signer?.key ?? this.key,
      certificate: this.certificate,
      rekor: this.rekor,
      tsaTime: this.tsaTime,
      predicateType: this.predicateType,
      annotations: this.annotations,
      trustRootVersion: this.signer?.trustRootVersion ?? this.#trustSetVersion,
    };
  }
}

/** Key fingerprints of the certificates seen, so one verification exports a certificate's key once. */
const certificateKeys = new WeakMap<X509Certificate, VerdictKey>();

export function certificateKey(cert: X509Certificate): VerdictKey {
  let key = certificateKeys.get(cert);
  if (key === undefined) {
    key = { fingerprint: certificateKeyFingerprint(cert), source: 'certificate', name: null };
    certificateKeys.set(cert, key);
  }
  return key;
}
