import type { Logger } from './logger.ts';

/** Node and ioredis errors that mean "cannot reach it", as opposed to a bad command or a bug. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
// The last three are node-postgres's words for a connection cut or never made.
const UNREACHABLE_MESSAGE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Connection is closed|connect ETIMEDOUT|Stream isn't writeable|Connection terminated|timeout exceeded when trying to connect|terminating connection due to administrator command|not queryable/;

export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return (typeof e?.code === 'string' && UNREACHABLE_CODES.has(e.code)) || (typeof e?.message === 'string' && UNREACHABLE_MESSAGE.test(e.message));
}

/** `host:port` of a URL, never its credentials. */
export function addressOf(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port === '' ? defaultPort : u.port}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * A dependency's outage as an operator wants to read it: one warning when it becomes unreachable,
 * naming what and where (no stack), then at most one reminder per interval with how many errors
 * came meanwhile, and one line when it is back. Every connection, queue and worker over the same
 * dependency reports through one of these, so an outage is a handful of lines, not a stack trace
 * per retry per client. Errors that are not about reaching it are logged in full as before.
 */
export class OutageLog {
  readonly #log: Logger;
  readonly #what: string;
  readonly #where: string;
  readonly #intervalMs: number;
  #since: number | null = null;
  #lastReport = 0;
  #unreported = 0;

  constructor(log: Logger, what: string, where: string, intervalMs = 30_000) {
    this.#log = log;
    this.#what = what;
    this.#where = where;
    this.#intervalMs = intervalMs;
  }

  /** An error from any client of the dependency; `source` says which (`index queue`, `worker`). */
  error(err: Error, source: string): void {
    if (!isUnreachable(err)) {
      this.#log.error({ err, dependency: this.#what, source }, `${this.#what} error (${source})`);
      return;
    }
    const now = Date.now();
    if (this.#since === null) {
      this.#since = now;
      this.#lastReport = now;
      this.#unreported = 0;
      this.#log.warn({ dependency: this.#what, address: this.#where, error: err.message }, `${this.#what} at ${this.#where} is unreachable (${err.message}); retrying`);
      return;
    }
    this.#unreported++;
    if (now - this.#lastReport >= this.#intervalMs) {
      this.#log.warn(
        { dependency: this.#what, address: this.#where, downSeconds: Math.round((now - this.#since) / 1000), errors: this.#unreported, error: err.message },
        `${this.#what} at ${this.#where} still unreachable after ${Math.round((now - this.#since) / 1000)} s (${this.#unreported} errors since the last report); retrying`,
      );
      this.#lastReport = now;
      this.#unreported = 0;
    }
  }

  /** A client reached it again; ends the outage (said once). */
  restored(): void {
    if (this.#since === null) {
      return;
    }
    this.#log.info({ dependency: this.#what, address: this.#where, downSeconds: Math.round((Date.now() - this.#since) / 1000) }, `${this.#what} at ${this.#where} is reachable again`);
    this.#since = null;
  }

  get down(): boolean {
    return this.#since !== null;
  }
}
