/**
 * The stored result of verifying one signature. Every verification ends in exactly one of these;
 * `transient` is never stored as a result (the job retries instead).
 */
export const OUTCOMES = [
  'verified',
  'invalid_signature',
  'digest_mismatch',
  'untrusted_root',
  'identity_mismatch',
  'tlog_missing',
  'tlog_invalid',
  'cert_invalid',
  'malformed',
] as const;
export type SignatureOutcome = (typeof OUTCOMES)[number];

/** A manifest's summary: `verified` if any signature verified, `unsigned` if none was found. */
export type ManifestStatus = 'unsigned' | SignatureOutcome;

/** Order used to pick the summary of a manifest whose signatures all failed (most telling first). */
const FAILURE_PRECEDENCE: readonly SignatureOutcome[] = [
  'digest_mismatch',
  'invalid_signature',
  'identity_mismatch',
  'untrusted_root',
  'cert_invalid',
  'tlog_invalid',
  'tlog_missing',
  'malformed',
];

export function summarizeOutcomes(outcomes: readonly SignatureOutcome[]): ManifestStatus {
  if (outcomes.length === 0) {
    return 'unsigned';
  }
  if (outcomes.includes('verified')) {
    return 'verified';
  }
  return FAILURE_PRECEDENCE.find((o) => outcomes.includes(o)) ?? 'malformed';
}
