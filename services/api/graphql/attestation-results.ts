import type { AttestationCheck, AttestationCheckReason } from '../../common/domain/decision.ts';
import type { AttestationRequirementReason, AttestationRequirementResult } from './types.generated.ts';

const ATTESTATION_REASONS: Readonly<Record<AttestationCheckReason, AttestationRequirementReason>> = {
  satisfied: 'SATISFIED',
  missing: 'MISSING',
  unverified: 'UNVERIFIED',
  signer_mismatch: 'SIGNER_MISMATCH',
  condition_failed: 'CONDITION_FAILED',
};

/** A decision's per-requirement attestation results as GraphQL's `AttestationRequirementResult`s (`Decision` and `Explanation`). */
export function attestationResults(checks: readonly AttestationCheck[] | undefined): AttestationRequirementResult[] {
  return (checks ?? []).map((a) => ({ ...a, reason: ATTESTATION_REASONS[a.reason], predicateTypes: [...a.predicateTypes] }));
}
