import { RegistryError } from '../../common/errors.ts';

/** A `TRANSIENT` 429 whose `Retry-After` is longer than Signet waits in-process; retry the job later. */
export class RegistryRateLimitError extends RegistryError {
  /** How long the registry asked to wait, when it said. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryAfterMs: number | undefined) {
    super('TRANSIENT', message, { status: 429 });
    this.retryAfterMs = retryAfterMs;
  }
}

/** Short description of a distribution error body: `MANIFEST_UNKNOWN: manifest unknown`. */
export function describeErrorBody(body: Buffer): string {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = Array.isArray(doc.errors) ? doc.errors[0] : undefined;
    if (first !== undefined && typeof first.code === 'string') {
      const msg = typeof first.message === 'string' ? `: ${first.message}` : '';
      return ` (${`${first.code}${msg}`.slice(0, 200)})`;
    }
  } catch {
    // not JSON: say nothing
  }
  return '';
}

/**
 * The error for an answer that is not 2xx after retries and the auth flow: NOT_FOUND for 404,
 * UNAUTHORIZED for 401 and 403, INVALID for anything else.
 */
export function errorForStatus(status: number, body: Buffer, what: string): RegistryError {
  const detail = describeErrorBody(body);
  if (status === 404) {
    return new RegistryError('NOT_FOUND', `${what}: not found${detail}`, { status: 404 });
  }
  if (status === 401 || status === 403) {
    return new RegistryError('UNAUTHORIZED', `${what}: HTTP ${status}${detail}`, { status });
  }
  return new RegistryError('INVALID', `${what}: unexpected HTTP ${status}${detail}`, { status });
}
