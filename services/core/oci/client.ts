import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { RegistryError } from '../../common/errors.ts';
import { isDigest, sha256Digest, type Digest } from '../../common/domain/digest.ts';
import { isRegistryHost, isRepositoryName, isTag } from '../../common/domain/image-ref.ts';
import type { Logger } from '../../common/logger.ts';
import {
  basicAuthorization,
  createTokenCache,
  normalizeRegistryHost,
  parseTokenResponse,
  parseWwwAuthenticate,
  type CredentialStore,
} from './auth.ts';
import { describeErrorBody, RegistryRateLimitError } from './errors.ts';
import { HostPolicy, type HostPolicyOptions } from './hosts.ts';
import { MANIFEST_MEDIA_TYPES, normalizeMediaType, parseManifest, type ParsedManifest } from './media-types.ts';

export { RegistryRateLimitError } from './errors.ts';

/** Requests in flight to one registry when nothing else is configured. */
export const DEFAULT_CONCURRENCY = 8;

/** Which hosts the client may contact and how (insecure hosts, endpoints, allowlists): see {@link HostPolicyOptions}. */
export interface RegistryClientOptions extends HostPolicyOptions {
  readonly credentials?: CredentialStore;
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
  readonly maxManifestBytes: number;
  readonly log: Logger;
  readonly userAgent?: string;
}

export interface FetchedManifest {
  readonly digest: Digest;
  /** The manifest's media type (one of the four in `MANIFEST_MEDIA_TYPES`). */
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly manifest: ParsedManifest;
}

export interface RegistryClient {
  /** GET a manifest by tag or digest; verifies the bytes against the digest. */
  getManifest(registry: string, repository: string, reference: Digest | string): Promise<FetchedManifest>;
  /** GET a blob (following redirects to storage), at most `maxBytes`, verified against `digest`. */
  getBlob(registry: string, repository: string, digest: Digest, maxBytes: number): Promise<Buffer>;
  /**
   * GET one page of a paginated JSON list: `_catalog` (`repository` null), `tags/list`,
   * `referrers/<digest>` (relative to the repository), or a `next` path as returned. `next` is the path of
   * the following page from the `Link: <…>; rel="next"` header (same registry only), or null.
   */
  listPage(registry: string, repository: string | null, path: string): Promise<ListPage>;
}

export interface ListPage {
  readonly body: unknown;
  readonly next: string | null;
}

/** Bodies of list endpoints are small JSON documents; a catalog page of 1000 names fits easily. */
export const MAX_LIST_PAGE_BYTES = 4 * 1024 * 1024;

/**
 * The path of the `rel="next"` target of a `Link` header, when it is on `origin` (relative, or
 * absolute with the same origin) and under `/v2/`; null otherwise.
 */
export function nextPageFromLink(link: string | null, origin: string): string | null {
  if (link === null) {
    return null;
  }
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m === null || !/(^|;)\s*rel="?next"?\s*(;|$)/i.test(m[2]!)) {
      continue;
    }
    let url: URL;
    try {
      url = new URL(m[1]!, origin);
    } catch {
      return null;
    }
    return url.origin === origin && url.pathname.startsWith('/v2/') ? `${url.pathname}${url.search}` : null;
  }
  return null;
}

export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Base of the exponential backoff (full jitter: a random wait in [0, base·2^attempt]). */
export const RETRY_BASE_MS = 200;
export const RETRY_MAX_BACKOFF_MS = 5_000;
/** Longest `Retry-After` honoured in-process; longer ones become a {@link RegistryRateLimitError}. */
export const MAX_RETRY_AFTER_MS = 10_000;
export const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY_BYTES = 16 * 1024;
const MAX_TOKEN_BODY_BYTES = 1024 * 1024;

const DOCKER_HUB_API = 'registry-1.docker.io';

/**
 * Checks a registry name (`host[:port]`, case-insensitive) and returns it lower-cased.
 * Throws `RegistryError('INVALID')`.
 */
export function validateRegistryHost(registry: string): string {
  const host = registry.toLowerCase();
  if (!isRegistryHost(host)) {
    throw new RegistryError('INVALID', `invalid registry host ${JSON.stringify(registry.slice(0, 100))}`);
  }
  return host;
}

/** Checks a repository name against distribution's grammar. Throws `RegistryError('INVALID')`. */
export function validateRepository(repository: string): string {
  if (!isRepositoryName(repository)) {
    throw new RegistryError('INVALID', `invalid repository name ${JSON.stringify(repository.slice(0, 100))}`);
  }
  return repository;
}

/** A tag or a sha256 digest. Throws `RegistryError('INVALID')`. */
export function validateReference(reference: string): { kind: 'digest'; digest: Digest } | { kind: 'tag'; tag: string } {
  if (isDigest(reference)) {
    return { kind: 'digest', digest: reference };
  }
  if (reference.includes(':')) {
    throw new RegistryError('INVALID', `invalid digest ${JSON.stringify(reference.slice(0, 80))}: only sha256 is supported`);
  }
  if (!isTag(reference)) {
    throw new RegistryError('INVALID', `invalid tag ${JSON.stringify(reference.slice(0, 80))}`);
  }
  return { kind: 'tag', tag: reference };
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

interface Target {
  /** As the caller named it, lower-cased: the key for credentials, tokens and the insecure list. */
  readonly host: string;
  readonly origin: string;
  readonly repository: string;
}

interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
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
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

export function createRegistryClient(opts: RegistryClientOptions): RegistryClient {
  const log = opts.log;
  const userAgent = opts.userAgent ?? 'signet';
  const hosts = new HostPolicy(opts);
  const limits = new Map<string, LimitFunction>();
  /** Runs `fn` in one of `host`'s request slots (FIFO). */
  function inSlot<T>(host: string, fn: () => Promise<T>): Promise<T> {
    let limit = limits.get(host);
    if (limit === undefined) {
      limit = pLimit(opts.concurrencyByRegistry?.[host] ?? opts.concurrency ?? DEFAULT_CONCURRENCY);
      limits.set(host, limit);
    }
    return limit(fn);
  }
  const tokens = createTokenCache();
  /** host + repository → the scope the registry last asked for, to send its cached token up front. */
  const scopeOf = new Map<string, string>();
  /** Hosts that accepted Basic credentials: send them up front next time. */
  const basicHosts = new Set<string>();

  function resolve(registry: string, repository: string): Target {
    const host = validateRegistryHost(registry);
    hosts.checkRegistry(host);
    if (repository !== '') {
      // '' is the registry itself (the catalog).
      validateRepository(repository);
    }
    const dockerHub = normalizeRegistryHost(host) === 'docker.io';
    // Docker Hub's official images live under library/, at the API host or any mirror of it.
    const repo = dockerHub && repository !== '' && !repository.includes('/') ? `library/${repository}` : repository;
    return { host, origin: hosts.origin(host, dockerHub ? DOCKER_HUB_API : host), repository: repo };
  }

  /** One request, following redirects by hand, under one timeout that also covers reading the body. */
  async function send(start: URL, headers: Record<string, string>, maxBytes: number, what: string): Promise<HttpResult> {
    const signal = AbortSignal.timeout(opts.timeoutMs);
    let url = start;
    let hdrs = { ...headers };
    for (let hop = 0; ; hop++) {
      const current = url;
      const began = performance.now();
      let status: number | undefined;
      let failure: string | undefined;
      try {
        const res = await fetch(current, { method: 'GET', headers: hdrs, redirect: 'manual', signal });
        status = res.status;
        if (REDIRECTS.has(res.status)) {
          await res.body?.cancel().catch(() => undefined);
          url = nextHop(current, res.headers.get('location'), hop, what);
          if (url.origin !== current.origin) {
            // Never carry a registry token or credentials to another origin (e.g. blob storage).
            hdrs = withoutAuthorization(hdrs);
          }
          continue;
        }
        const ok = res.status >= 200 && res.status < 300;
        const body = ok ? await readCapped(res, maxBytes, what) : await readErrorBody(res);
        return { status: res.status, headers: res.headers, body, url: current };
      } catch (err) {
        const e = classify(err, signal, current, what);
        failure = e.message;
        throw e;
      } finally {
        const ms = Math.round(performance.now() - began);
        log.debug({ method: 'GET', url: safeUrl(current), status, ms, error: failure }, 'registry request');
        opts.onRequest?.(current.host, status ?? 'error');
      }
    }
  }

  function nextHop(from: URL, location: string | null, hop: number, what: string): URL {
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
    if (next.protocol === 'http:' && !hosts.isInsecure(next)) {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect to plain-HTTP ${safeUrl(next)} (host not in the insecure list)`);
    }
    if (next.username !== '' || next.password !== '') {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect carrying user info`);
    }
    if (!hosts.mayGo(from, next)) {
      throw new RegistryError('REFUSED', `${what}: refusing to follow a redirect to ${next.host}: not in SIGNET_ALLOWED_REDIRECT_HOSTS`);
    }
    return next;
  }

  function withoutAuthorization(h: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(h).filter(([k]) => k.toLowerCase() !== 'authorization'));
  }

  async function readCapped(res: Response, maxBytes: number, what: string): Promise<Buffer> {
    const declared = res.headers.get('content-length');
    if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new RegistryError('TOO_LARGE', `${what}: Content-Length ${declared} exceeds the limit of ${maxBytes} bytes`, {
        status: res.status,
      });
    }
    if (res.body === null) {
      return Buffer.alloc(0);
    }
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new RegistryError('TOO_LARGE', `${what}: body exceeds the limit of ${maxBytes} bytes`, { status: res.status });
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, total);
  }

  async function readErrorBody(res: Response): Promise<Buffer> {
    try {
      return await readCapped(res, MAX_ERROR_BODY_BYTES, 'error body');
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'TOO_LARGE') {
        return Buffer.alloc(0);
      }
      throw err;
    }
  }

  function classify(err: unknown, signal: AbortSignal, url: URL, what: string): RegistryError {
    if (err instanceof RegistryError) {
      return err;
    }
    if (signal.aborted) {
      return new RegistryError('TRANSIENT', `${what}: ${url.host} did not answer within ${opts.timeoutMs} ms`, { cause: err });
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
    if (message === 'bad port') {
      // The fetch standard blocks some ports (e.g. 6000, 10080) outright: retrying cannot help.
      const e = new RegistryError('REFUSED', `${what}: port of ${url.host} is blocked by the fetch standard's bad-port list`, { cause: err });
      FINAL.add(e);
      return e;
    }
    const reason = code ?? message;
    return new RegistryError('TRANSIENT', `${what}: connection to ${url.host} failed (${reason})`, { cause: err });
  }

  /**
   * Runs `once` up to 1 + retries times. Retries 5xx, 408 and 429 answers and thrown TRANSIENT
   * errors (timeouts, connection errors); returns any other answer for the caller to map.
   */
  async function withRetries(what: string, once: () => Promise<HttpResult>): Promise<HttpResult> {
    for (let attempt = 0; ; attempt++) {
      let failure: RegistryError;
      let waitMs: number | undefined;
      try {
        const res = await once();
        if (res.status === 429) {
          const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
          const after = retryAfter === undefined ? '' : `; retry after ${Math.ceil(retryAfter / 1000)} s`;
          failure = new RegistryRateLimitError(`${what}: rate limited by ${res.url.host} (HTTP 429${after})`, retryAfter);
          if (retryAfter !== undefined && retryAfter > MAX_RETRY_AFTER_MS) {
            throw failure;
          }
          waitMs = retryAfter;
        } else if (res.status >= 500 || res.status === 408) {
          failure = new RegistryError('TRANSIENT', `${what}: HTTP ${res.status} from ${res.url.host}${describeErrorBody(res.body)}`, {
            status: res.status,
          });
        } else {
          return res;
        }
      } catch (err) {
        if (!(err instanceof RegistryError) || !err.transient || FINAL.has(err) || err instanceof RegistryRateLimitError) {
          throw err;
        }
        failure = err;
      }
      if (attempt >= opts.retries) {
        if (attempt > 0) {
          failure.message = `${failure.message} (gave up after ${attempt + 1} attempts)`;
        }
        throw failure;
      }
      const delay = waitMs ?? Math.random() * Math.min(RETRY_MAX_BACKOFF_MS, RETRY_BASE_MS * 2 ** attempt);
      log.debug({ attempt: attempt + 1, delayMs: Math.round(delay), reason: failure.message }, 'registry request retry');
      await sleep(delay);
    }
  }

  function baseHeaders(accept: string | undefined): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': userAgent };
    if (accept !== undefined) {
      h.accept = accept;
    }
    return h;
  }

  function defaultScope(t: Target): string {
    return t.repository === '' ? 'registry:catalog:*' : `repository:${t.repository}:pull`;
  }

  function upFrontAuthorization(t: Target): string | undefined {
    const scope = scopeOf.get(`${t.host} ${t.repository}`) ?? defaultScope(t);
    const token = tokens.get(t.host, scope);
    if (token !== undefined) {
      return `Bearer ${token}`;
    }
    const cred = basicHosts.has(t.host) ? opts.credentials?.get(t.host) : undefined;
    return cred === undefined ? undefined : basicAuthorization(cred);
  }

  /** Answers a 401: the Authorization to retry with, or `undefined` when there is nothing to try. */
  async function authorize(t: Target, res: HttpResult, sent: string | undefined, what: string): Promise<string | undefined> {
    const challenges = parseWwwAuthenticate(res.headers.get('www-authenticate') ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined);
    const realm = bearer?.params.realm;
    if (bearer !== undefined && realm !== undefined) {
      const scope = bearer.params.scope ?? defaultScope(t);
      if (scopeOf.size >= 10_000) {
        scopeOf.clear();
      }
      scopeOf.set(`${t.host} ${t.repository}`, scope);
      const cached = tokens.get(t.host, scope);
      if (cached !== undefined && `Bearer ${cached}` !== sent) {
        return `Bearer ${cached}`;
      }
      tokens.delete(t.host, scope);
      const token = await fetchToken(t, realm, bearer.params.service, scope, what);
      return `Bearer ${token}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const cred = opts.credentials?.get(t.host);
      const header = cred === undefined ? undefined : basicAuthorization(cred);
      if (header !== undefined && header !== sent) {
        basicHosts.add(t.host);
        return header;
      }
    }
    return undefined;
  }

  async function fetchToken(t: Target, realm: string, service: string | undefined, scope: string, what: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError('INVALID', `${what}: the registry's token realm is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryError('REFUSED', `${what}: refusing a ${url.protocol} token realm`);
    }
    if (url.protocol === 'http:' && !hosts.isInsecure(url)) {
      throw new RegistryError('REFUSED', `${what}: refusing plain-HTTP token realm ${safeUrl(url)} (host not in the insecure list)`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new RegistryError('REFUSED', `${what}: refusing a token realm carrying user info`);
    }
    if (!hosts.mayGo(new URL(t.origin), url)) {
      throw new RegistryError('REFUSED', `${what}: refusing token realm on ${url.host}: not in SIGNET_ALLOWED_REDIRECT_HOSTS`);
    }
    if (service !== undefined) {
      url.searchParams.set('service', service);
    }
    for (const s of scope.split(' ').filter((x) => x !== '')) {
      url.searchParams.append('scope', s);
    }
    const headers = baseHeaders('application/json');
    const cred = opts.credentials?.get(t.host);
    if (cred !== undefined) {
      headers.authorization = basicAuthorization(cred);
    }
    log.debug({ realm: safeUrl(url), scope, withCredentials: cred !== undefined }, 'registry token request');
    const res = await send(url, headers, MAX_TOKEN_BODY_BYTES, `${what}: token request`);
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      throw new RegistryError('TRANSIENT', `${what}: token endpoint ${url.host} answered HTTP ${res.status}`, { status: res.status });
    }
    if (res.status < 200 || res.status >= 300) {
      const how = cred === undefined ? 'anonymous access' : 'the configured credentials';
      throw new RegistryError('UNAUTHORIZED', `${what}: token endpoint ${url.host} refused ${how} (HTTP ${res.status})`, {
        status: res.status,
      });
    }
    const token = parseTokenResponse(res.body);
    tokens.set(t.host, scope, token);
    return token.token;
  }

  /** GET a registry API path: retries, the auth flow, then maps what is left to a RegistryError. */
  async function registryGet(t: Target, path: string, accept: string | undefined, maxBytes: number, what: string): Promise<HttpResult> {
    const url = new URL(`${t.origin}${path}`);
    const res = await withRetries(what, () => inSlot(t.host, async () => {
      const sent = upFrontAuthorization(t);
      const first = await send(url, withAuth(baseHeaders(accept), sent), maxBytes, what);
      if (first.status !== 401) {
        return first;
      }
      const next = await authorize(t, first, sent, what);
      return next === undefined ? first : await send(url, withAuth(baseHeaders(accept), next), maxBytes, what);
    }));
    if (res.status >= 200 && res.status < 300) {
      return res;
    }
    const detail = describeErrorBody(res.body);
    if (res.status === 404) {
      throw new RegistryError('NOT_FOUND', `${what}: not found${detail}`, { status: 404 });
    }
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError('UNAUTHORIZED', `${what}: HTTP ${res.status}${detail}`, { status: res.status });
    }
    throw new RegistryError('INVALID', `${what}: unexpected HTTP ${res.status}${detail}`, { status: res.status });
  }

  function withAuth(h: Record<string, string>, authorization: string | undefined): Record<string, string> {
    return authorization === undefined ? h : { ...h, authorization };
  }

  return {
    async getManifest(registry, repository, reference) {
      const t = resolve(registry, repository);
      const ref = validateReference(reference);
      const what = `manifest ${t.host}/${repository}${ref.kind === 'digest' ? `@${ref.digest}` : `:${ref.tag}`}`;
      const res = await registryGet(
        t,
        `/v2/${t.repository}/manifests/${reference}`,
        MANIFEST_ACCEPT,
        opts.maxManifestBytes,
        what,
      );
      const bytes = res.body;
      const digest = sha256Digest(bytes);
      if (ref.kind === 'digest' && digest !== ref.digest) {
        throw new RegistryError('INVALID', `${what}: digest mismatch: the registry served content with digest ${digest}`);
      }
      const header = res.headers.get('docker-content-digest')?.trim();
      if (header !== undefined && isDigest(header) && header !== digest) {
        throw new RegistryError('INVALID', `${what}: digest mismatch: Docker-Content-Digest says ${header}, the content is ${digest}`);
      }
      const manifest = parseManifest(bytes, res.headers.get('content-type'));
      log.debug({ manifest: what, digest, mediaType: manifest.mediaType, bytes: bytes.length }, 'fetched manifest');
      return { digest, mediaType: normalizeMediaType(manifest.mediaType), bytes, manifest };
    },

    async listPage(registry, repository, path) {
      const t = resolve(registry, repository ?? '');
      if (!path.startsWith('/v2/')) {
        // Relative to the repository (`tags/list`), or to /v2/ for the catalog (`_catalog`).
        path = repository === null ? `/v2/${path}` : `/v2/${t.repository}/${path}`;
      }
      const what = `list ${t.host}${path.split('?')[0]}`;
      const res = await registryGet(t, path, 'application/json, application/vnd.oci.image.index.v1+json', MAX_LIST_PAGE_BYTES, what);
      let body: unknown;
      try {
        body = JSON.parse(res.body.toString('utf8'));
      } catch {
        throw new RegistryError('INVALID', `${what}: the registry answered something that is not JSON`);
      }
      return { body, next: nextPageFromLink(res.headers.get('link'), new URL(t.origin).origin) };
    },

    async getBlob(registry, repository, digest, maxBytes) {
      const t = resolve(registry, repository);
      if (!isDigest(digest)) {
        throw new RegistryError('INVALID', `invalid blob digest ${JSON.stringify(String(digest).slice(0, 80))}`);
      }
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
        throw new RangeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
      }
      const what = `blob ${t.host}/${repository}@${digest}`;
      const res = await registryGet(t, `/v2/${t.repository}/blobs/${digest}`, undefined, maxBytes, what);
      const actual = sha256Digest(res.body);
      if (actual !== digest) {
        throw new RegistryError('INVALID', `${what}: digest mismatch: the registry served content with digest ${actual}`);
      }
      return res.body;
    },
  };
}
