import { PolicyError, VerificationError } from '@sigstore/verify';
import type { SignatureOutcome } from '../../common/domain/outcome.ts';
import { MalformedSignatureError } from './cosign-layer.ts';

/** A check failed: `outcome` is what the verdict records, the message its reason. */
export class Failure extends Error {
  readonly outcome: SignatureOutcome;
  constructor(outcome: SignatureOutcome, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

const UNTRUSTED_PATH = new Set(['no trusted certificate path found', 'no valid certificate path found']);

/** Maps whatever verification threw to a stored outcome. Unknown exceptions never verify. */
export function classify(err: unknown): { outcome: SignatureOutcome; reason: string } {
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

