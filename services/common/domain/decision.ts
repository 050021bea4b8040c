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
  | Exclude<SignatureOutcome, 'verified' | 'identity_mismatch'>;

export interface Signer {
  readonly subject: string;
  readonly issuer: string | null;
}

export interface Decision {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly message: string;
  /** The signers that satisfied the rule (empty unless allowed by verification). */
  readonly signers: readonly Signer[];
  readonly policyVersion: string;
  /** The policy entry that applied, e.g. `allow_with_verification.docker.io.team-a/*`. */
  readonly rule: string | null;
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

export interface ManifestFacts {
  readonly registry: string;
  readonly repository: string;
  readonly status: ManifestStatus;
  /** Its current signatures; withdrawn ones (artifact deleted or replaced in the registry) are left out. */
  readonly signatures: readonly SignatureFact[];
  /** How many of its signatures were withdrawn (said in the message of an `unsigned` denial). */
  readonly withdrawn?: number;
}

