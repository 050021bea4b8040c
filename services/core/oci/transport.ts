import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { request, type Dispatcher } from 'undici';
import { RegistryError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { describeErrorBody, RegistryRateLimitError } from './errors.ts';
import type { HostPolicy } from './hosts.ts';

/** Requests in flight to one registry when nothing else is configured. */
export const DEFAULT_CONCURRENCY = 8;
/** Base of the exponential backoff (full jitter: a random wait in [0, base·2^attempt]). */
export const RETRY_BASE_MS = 200;
export const RETRY_MAX_BACKOFF_MS = 5_000;
/** Longest `Retry-After` honoured in-process; longer ones become a {@link RegistryRateLimitError}. */
export const MAX_RETRY_AFTER_MS = 10_000;
export const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY_BYTES = 16 * 1024;

export interface TransportOptions {
  /** Limit for one attempt: connection, headers and body, redirects included. */
  readonly timeoutMs: number;
  /** Extra attempts after a 5xx, 408, 429, timeout or connection error. */
  readonly retries: number;
  /**
   * Requests in flight to one registry at most (default 8); more wait their turn, in order. The
   * wait does not count against `timeoutMs`, and a retry's back-off holds no slot.
   */
  readonly concurrency?: number;
  /** Per-registry limits (registry name as in events → limit), over `concurrency`. */
  readonly concurrencyByRegistry?: Readonly<Record<string, number>>;
  /** Called after every HTTP request with the host asked and its status, or `error` (metrics). */
  readonly onRequest?: (host: string, status: number | 'error') => void;
  readonly log: Logger;
}

/** `Retry-After` (delay-seconds or HTTP-date) → milliseconds from `now`; `undefined` when absent or unparsable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) {
    return undefined;
  }
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) {
    return Number(v) * 1000;
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A response's headers, read by name (case-insensitive; repeated ones joined with ", ", as `Headers.get` does). */
export interface ResponseHeaders {
  get(name: string): string | null;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** The body for 2xx (capped at the caller's limit); up to 16 KiB of it otherwise. */
  readonly body: Buffer;
  readonly url: URL;
}

/** Marks errors that the retry loop must not retry (TLS failures, long Retry-After). */
const FINAL = new WeakSet<Error>();

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const TLS_ERROR_CODES = /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_(GET|VERIFY)_|ERR_OSSL_|EPROTO$|HOSTNAME_MISMATCH|ERR_TLS_CERT)/;

/** The first `code` (ECONNREFUSED, ERR_SSL_…) along the cause chain, and the innermost message. */
function errorDetail(err: unknown): { code: string | undefined; message: string } {
  let message = err instanceof Error ? err.message : String(err);
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      return { code, message };
    }
    if (e instanceof Error) {
      message = e.message;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return { code: undefined, message };
}

/** The URL as logged and put in messages: no query string (pre-signed storage URLs carry secrets there). */
export function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

/**
 * HTTP GETs to registries and where they redirect: per-host request slots, retries with backoff,
 * redirects followed by hand under the host policy, capped body reads, and the `onRequest` hook.
 */
export class Transport {
  readonly #opts: TransportOptions;
  readonly #hosts: HostPolicy;
  readonly #limits = new Map<string, LimitFunction>();

  constructor(opts: TransportOptions, hosts: HostPolicy) {
    this.#opts = opts;
    this.#hosts = hosts;
  }

  /** Runs `fn` in one of `host`'s request slots (FIFO). */
  inSlot<T>(host: string, fn: () => Promise<T>): Promise<T> {
    let limit = this.#limits.get(host);
    if (limit === undefined) {
      limit = pLimit(this.#opts.concurrencyByRegistry?.[host] ?? this.#opts.concurrency ?? DEFAULT_CONCURRENCY);
      this.#limits.set(host, limit);
    }
    return limit(fn);
  }

  /**
   * Runs `once` up to 1 + retries times. Retries 5xx, 408 and 429 answers and thrown TRANSIENT
   * errors (timeouts, connection errors); returns any other answer for the caller to map.
   */
  async withRetries(what: string, once: () => Promise<HttpResult>): Promise<HttpResult> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await attemptOnce(what, once);
      if (!('failure' in outcome)) {
        return outcome;
      }
      const { failure, waitMs } = outcome;
      if (attempt >= this.#opts.retries) {
        if (attempt > 0) {
          failure.message = `${failure.message} (gave up after ${attempt + 1} attempts)`;
        }
        throw failure;
      }
      const delay = waitMs ?? backoffMs(attempt);
      this.#opts.log.debug({ attempt: attempt + 1, delayMs: Math.round(delay), reason: failure.message }, 'registry request retry');
      await sleep(delay);
    }
  }

  /** One request, following redirects by hand, under one timeout that also covers reading the body. */
  async send(start: URL, headers: Record<string, string>, maxBytes: number, what: string, form?: URLSearchParams): Promise<HttpResult> {
    const signal = AbortSignal.timeout(this.#opts.timeoutMs);
    let url = start;
    let hdrs = { ...headers };
    for (let hop = 0; ; hop++) {
      const answer = await this.#request(url, hdrs, signal, maxBytes, hop, what, form);
      if (!(answer instanceof URL)) {
        return answer;
      }
      if (answer.origin !== url.origin) {
        // Never carry a registry token or credentials to another origin (e.g. blob storage).
        hdrs = withoutAuthorization(hdrs);
      }
      url = answer;
    }
  }

  /**
   * One GET of `url` (a POST of `form`, for the OAuth2 token grant), redirects not followed: the
   * answer, or the checked URL it redirects to (hop number `hop`). Logged and reported to
   * `onRequest` however it ends.
   */
  async #request(
    url: URL,
    headers: Record<string, string>,
    signal: AbortSignal,
    maxBytes: number,
    hop: number,
    what: string,
    form?: URLSearchParams,
  ): Promise<HttpResult | URL> {
    const began = performance.now();
    let status: number | undefined;
    let failure: string | undefined;
    try {
      // undici's request(), not fetch(): the same client without the WHATWG Request, Response and
      // stream objects fetch builds around each exchange (about half a registry request's CPU here).
      // Redirects are not followed (handled below), and no Accept-Encoding is sent, so bodies come
      // as the registry stored them.
      const res = await request(url, {
        method: form === undefined ? 'GET' : 'POST',
        headers: form === undefined ? headers : { ...headers, 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' },
        body: form?.toString(),
        signal,
      });
      status = res.statusCode;
      const answered = responseHeaders(res.headers);
      if (REDIRECTS.has(status)) {
        await discard(res);
        return this.#nextHop(url, answered.get('location'), hop, what);
      }
      const ok = status >= 200 && status < 300;
      const body = ok ? await readCapped(res, answered, maxBytes, what) : await readErrorBody(res, answered);
      return { status, headers: answered, body, url };
    } catch (err) {
      const e = this.#classify(err, signal, url, what);
      failure = e.message;
      throw e;
    } finally {
      const ms = Math.round(performance.now() - began);
      this.#opts.log.debug({ method: form === undefined ? 'GET' : 'POST', url: safeUrl(url), status, ms, error: failure }, 'registry request');
      this.#opts.onRequest?.(url.host, status ?? 'error');
    }
  }

  #nextHop(from: URL, location: string | null, hop: number, what: string): URL {
    if (location === null || location === '') {
      throw new RegistryError('INVALID', `${what}: redirect without a Location header from ${safeUrl(from)}`);
    }
    if (hop >= MAX_REDIRECTS) {
      throw new RegistryError('INVALID', `${what}: more than ${MAX_REDIRECTS} redirects`);
    }
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw new RegistryError('INVALID', `${what}: unparsable redirect Location from ${safeUrl(from)}`);
    }
    if (next.protocol !== 'https:' && next.protocol !== 'http:') {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect to a ${next.protocol} URL`);
    }
    if (next.protocol === 'http:' && !this.#hosts.isInsecure(next)) {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect to plain-HTTP ${safeUrl(next)} (host not in the insecure list)`);
    }
    if (next.username !== '' || next.password !== '') {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect carrying user info`);
    }
    if (!this.#hosts.mayGo(from, next)) {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect to ${next.host}: not in SIGNET_ALLOWED_REDIRECT_HOSTS`);
    }
    return next;
  }

  #classify(err: unknown, signal: AbortSignal, url: URL, what: string): RegistryError {
    if (err instanceof RegistryError) {
      return err;
    }
    if (signal.aborted) {
      return new RegistryError('TRANSIENT', `${what}: ${url.host} did not answer within ${this.#opts.timeoutMs} ms`, { cause: err });
    }
    const { code, message } = errorDetail(err);
    if (code !== undefined && TLS_ERROR_CODES.test(code)) {
      const e = new RegistryError(
        'TRANSIENT',
        `${what}: TLS with ${url.host} failed (${code}); a registry that serves plain HTTP must be listed as insecure`,
        { cause: err },
      );
      FINAL.add(e);
      return e;
    }
    const reason = code ?? message;
    return new RegistryError('TRANSIENT', `${what}: connection to ${url.host} failed (${reason})`, { cause: err });
  }
}

/** Why one attempt is worth another: the error to throw when none is left, and the wait the registry asked for. */
interface Retryable {
  readonly failure: RegistryError;
  readonly waitMs: number | undefined;
}

/** One attempt: the answer to return, or why to try again; throws what must not be retried. */
async function attemptOnce(what: string, once: () => Promise<HttpResult>): Promise<HttpResult | Retryable> {
  let res: HttpResult;
  try {
    res = await once();
  } catch (err) {
    if (!(err instanceof RegistryError) || !err.transient || FINAL.has(err) || err instanceof RegistryRateLimitError) {
      throw err;
    }
    return { failure: err, waitMs: undefined };
  }
  return retryableAnswer(res, what) ?? res;
}

/** A 429, 5xx or 408 answer as a reason to retry; null for any other answer. */
function retryableAnswer(res: HttpResult, what: string): Retryable | null {
  if (res.status === 429) {
    return rateLimited(res, what);
  }
  if (res.status >= 500 || res.status === 408) {
    const failure = new RegistryError('TRANSIENT', `${what}: HTTP ${res.status} from ${res.url.host}${describeErrorBody(res.body)}`, {
      status: res.status,
    });
    return { failure, waitMs: undefined };
  }
  return null;
}

/** A 429: wait as long as `Retry-After` says, when it says; throws when that is longer than Signet waits in-process. */
function rateLimited(res: HttpResult, what: string): Retryable {
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  const after = retryAfter === undefined ? '' : `; retry after ${Math.ceil(retryAfter / 1000)} s`;
  const failure = new RegistryRateLimitError(`${what}: rate limited by ${res.url.host} (HTTP 429${after})`, retryAfter);
  if (retryAfter !== undefined && retryAfter > MAX_RETRY_AFTER_MS) {
    throw failure;
  }
  return { failure, waitMs: retryAfter };
}

/** Full jitter: a random wait in [0, min(max, base·2^attempt)]. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(RETRY_MAX_BACKOFF_MS, RETRY_BASE_MS * 2 ** attempt);
}

function withoutAuthorization(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k.toLowerCase() !== 'authorization'));
}

/**
 * Drops a body that is not read: a short one is read to its end, so the connection serves the
 * next request; a longer one is cut. Never `body.destroy()` alone: with no reader listening, the
 * abort it emits would be an uncaught exception.
 */
async function discard(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

function responseHeaders(raw: Dispatcher.ResponseData['headers']): ResponseHeaders {
  return {
    get(name) {
      const v = raw[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
    },
  };
}

async function readCapped(res: Dispatcher.ResponseData, headers: ResponseHeaders, maxBytes: number, what: string): Promise<Buffer> {
  const declared = headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > maxBytes) {
    await discard(res);
    throw new RegistryError('TOO_LARGE', `${what}: Content-Length ${declared} exceeds the limit of ${maxBytes} bytes`, {
      status: res.statusCode,
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      // Leaving the loop destroys the body (the iterator listens for its error).
      throw new RegistryError('TOO_LARGE', `${what}: body exceeds the limit of ${maxBytes} bytes`, { status: res.statusCode });
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

async function readErrorBody(res: Dispatcher.ResponseData, headers: ResponseHeaders): Promise<Buffer> {
  try {
    return await readCapped(res, headers, MAX_ERROR_BODY_BYTES, 'error body');
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'TOO_LARGE') {
      return Buffer.alloc(0);
    }
    throw err;
  }
}
