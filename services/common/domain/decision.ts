import type { ManifestStatus, SignatureOutcome } from './outcome.ts';
import type { SignerIdentity } from './signature.ts';

/** Why an image may or may not run. */
export type DecisionReason =
  | 'verified'
  | 'allowed_without_verification'
  | 'unsigned'
  | 'identity_mismatch'
  | 'threshold_not_met'
  | 'not_covered_by_policy'
  | 'unknown'
  | 'attestation_missing'
  | 'attestation_failed'
  | Exclude<SignatureOutcome, 'verified' | 'identity_mismatch'>;

export interface Signer {
  readonly subject: string;
  readonly issuer: string | null;
}

/**
 * What admission does with a denial: `enforce` refuses the request, `warn` admits it with a
 * Kubernetes warning per offending image, `audit` admits it silently (the outcome is recorded).
 */
export type DecisionMode = 'enforce' | 'warn' | 'audit';

/** A decision within one namespace scope of the policy. */
export interface ScopedDecision {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly message: string;
  /** The signers that satisfied the rule (empty unless allowed by verification). */
  readonly signers: readonly Signer[];
  /** The policy entry that applied, e.g. `allow_with_verification.docker.io.team-a/*`. */
  readonly rule: string | null;
  /** What admission does when this decision is a denial (the rule's mode, else its scope's, else the policy's). */
  readonly mode: DecisionMode;
  /** How each of the governing rule's attestation requirements fared (absent when the rule has none). */
  readonly attestations?: readonly AttestationCheck[];
}

export interface Decision extends ScopedDecision {
  readonly policyVersion: string;
  /**
   * Scope name → the decision in that scope's namespaces, for the scopes of the policy where it
   * differs from this one (the decision everywhere else). Absent when no scope differs.
   */
  readonly scoped?: Readonly<Record<string, ScopedDecision>> | undefined;
  /**
   * When the decision, or one of its `scoped` variants, stops being true by time alone (RFC 3339):
   * a condition read `now`, e.g. a scan's age. Signet decides the image again then; null or absent
   * when nothing depends on time.
   */
  readonly expiresAt?: string | null;
}

/** Why an attestation requirement was or was not met. */
export type AttestationCheckReason = 'satisfied' | 'missing' | 'unverified' | 'signer_mismatch' | 'condition_failed';

/** One attestation requirement of a rule, checked against an image's stored attestations. */
export interface AttestationCheck {
  /** The requirement's `name`, or its path (`attestations.0`). */
  readonly requirement: string;
  /** The predicate type URIs it accepts. */
  readonly predicateTypes: readonly string[];
  readonly satisfied: boolean;
  readonly reason: AttestationCheckReason;
  readonly message: string;
  /** When this requirement's answer changes by time alone (RFC 3339), or null. */
  readonly expiresAt: string | null;
}

/** What the ledger knows about one stored signature, as the policy needs it. */
export interface SignatureFact {
  readonly outcome: SignatureOutcome;
  readonly reason: string | null;
  readonly identity: SignerIdentity | null;
  readonly claims: Readonly<Record<string, string>>;
  readonly keyFingerprint: string | null;
  /** Whether a Rekor entry (SET) was verified for this signature. */
  readonly tlog: boolean;
  /** The payload's `optional` section. */
  readonly annotations: Readonly<Record<string, unknown>> | null;
}

/** What the ledger holds about one current (not withdrawn) attestation, as attestation requirements read it. */
export interface AttestationFact extends Omit<SignatureFact, 'annotations'> {
  readonly predicateType: string;
  /** When it was made: Rekor's integrated time, else a TSA's, else when Signet first saw it. */
  readonly signedAt: Date;
  /** The verified in-toto statement, or null when the stored material holds none Signet can read. */
  readonly statement: Readonly<Record<string, unknown>> | null;
}

export interface ManifestFacts {
  readonly registry: string;
  readonly repository: string;
  readonly status: ManifestStatus;
  /** Its current signatures; withdrawn ones (artifact deleted or replaced in the registry) are left out. */
  readonly signatures: readonly SignatureFact[];
  /** How many of its signatures were withdrawn (said in the message of an `unsigned` denial). */
  readonly withdrawn?: number;
  /**
   * Its current attestations of the predicate types the policy requires (loaded only when a rule
   * requires attestations); absent means none were loaded.
   */
  readonly attestations?: readonly AttestationFact[];
}

