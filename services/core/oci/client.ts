import { LRUCache } from 'lru-cache';
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
  type AuthChallenge,
  type CredentialStore,
} from './auth.ts';
import { errorForStatus } from './errors.ts';
import { HostPolicy, type HostPolicyOptions } from './hosts.ts';
import { MANIFEST_MEDIA_TYPES, normalizeMediaType, parseManifest, type ParsedManifest } from './media-types.ts';
import { safeUrl, Transport, type HttpResult, type TransportOptions } from './transport.ts';

export { RegistryRateLimitError } from './errors.ts';
export {
  DEFAULT_CONCURRENCY,
  MAX_REDIRECTS,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  RETRY_BASE_MS,
  RETRY_MAX_BACKOFF_MS,
} from './transport.ts';

/**
 * Which hosts the client may contact and how (insecure hosts, endpoints, allowlists): see
 * {@link HostPolicyOptions}; timeouts, retries, request slots and the request hook: see
 * {@link TransportOptions}.
 */
export interface RegistryClientOptions extends HostPolicyOptions, TransportOptions {
  readonly credentials?: CredentialStore;
  readonly maxManifestBytes: number;
  readonly log: Logger;
  readonly userAgent?: string;
  /** How long a repository whose registry answered the referrers API with 404 goes without asking it again (default {@link REFERRERS_API_RECHECK_MS}). */
  readonly referrersApiRecheckMs?: number;
}

/**
 * A registry without the OCI 1.1 referrers API (distribution 2.8, GHCR) answers it with 404 on
 * every image; clients then read the referrers tag schema instead. Asking again for every image
 * costs the registry a request (and a rate-limit unit) per image for nothing, so a 404 is
 * remembered per repository for this long (oras-go keeps it for a repository client's life). A
 * registry upgraded meanwhile is asked again after at most this long; until then its referrers are
 * read from the tag schema only, and one pushed through the API alone is still read when its own
 * push is indexed.
 */
export const REFERRERS_API_RECHECK_MS = 10 * 60_000;

export interface FetchedManifest {
  readonly digest: Digest;
  /** The manifest's media type (one of the four in `MANIFEST_MEDIA_TYPES`). */
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly manifest: ParsedManifest;
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

type Reference = { kind: 'digest'; digest: Digest } | { kind: 'tag'; tag: string };

/** A tag or a sha256 digest. Throws `RegistryError('INVALID')`. */
export function validateReference(reference: string): Reference {
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

interface Target {
  /** As the caller named it, lower-cased: the key for credentials, tokens and the insecure list. */
  readonly host: string;
  readonly origin: string;
  readonly repository: string;
}

/**
 * Reads images from OCI registries: manifests, blobs and list pages (catalog, tags, referrers),
 * each checked against its digest or size limit, through the registry's token or Basic auth flow.
 */
export class RegistryClient {
  readonly #opts: RegistryClientOptions;
  readonly #userAgent: string;
  readonly #hosts: HostPolicy;
  readonly #transport: Transport;
  readonly #tokens = createTokenCache();
  /** host + repository → the scope the registry last asked for, to send its cached token up front. */
  readonly #scopeOf = new Map<string, string>();
  /** Hosts that accepted Basic credentials: send them up front next time. */
  readonly #basicHosts = new Set<string>();
  /** `registry/repository` whose referrers API answered 404, until {@link REFERRERS_API_RECHECK_MS} has passed. */
  readonly #withoutReferrersApi: LRUCache<string, true>;

  constructor(opts: RegistryClientOptions) {
    this.#opts = opts;
    this.#userAgent = opts.userAgent ?? 'signet';
    this.#hosts = new HostPolicy(opts);
    this.#transport = new Transport(opts, this.#hosts);
    this.#withoutReferrersApi = new LRUCache({ max: 10_000, ttl: opts.referrersApiRecheckMs ?? REFERRERS_API_RECHECK_MS });
  }

  /** Whether `repository`'s registry answered its referrers API with 404 lately: read the referrers tag schema instead. */
  lacksReferrersApi(registry: string, repository: string): boolean {
    return this.#withoutReferrersApi.has(`${registry}/${repository}`);
  }

  /** Remembers that `repository`'s registry answered its referrers API with 404 (see {@link REFERRERS_API_RECHECK_MS}). */
  noteNoReferrersApi(registry: string, repository: string): void {
    this.#withoutReferrersApi.set(`${registry}/${repository}`, true);
  }

  /** GET a manifest by tag or digest; verifies the bytes against the digest. */
  async getManifest(registry: string, repository: string, reference: Digest | string): Promise<FetchedManifest> {
    const t = this.#resolve(registry, repository);
    const ref = validateReference(reference);
    const what = `manifest ${t.host}/${repository}${ref.kind === 'digest' ? `@${ref.digest}` : `:${ref.tag}`}`;
    const path = `/v2/${t.repository}/manifests/${reference}`;
    const res = await this.#get(t, path, MANIFEST_ACCEPT, this.#opts.maxManifestBytes, what);
    const bytes = res.body;
    const digest = verifiedManifestDigest(res, ref, what);
    const manifest = parseManifest(bytes, res.headers.get('content-type'));
    this.#opts.log.debug({ manifest: what, digest, mediaType: manifest.mediaType, bytes: bytes.length }, 'fetched manifest');
    return { digest, mediaType: normalizeMediaType(manifest.mediaType), bytes, manifest };
  }

  /** GET a blob (following redirects to storage), at most `maxBytes`, verified against `digest`. */
  async getBlob(registry: string, repository: string, digest: Digest, maxBytes: number): Promise<Buffer> {
    const t = this.#resolve(registry, repository);
    if (!isDigest(digest)) {
      throw new RegistryError('INVALID', `invalid blob digest ${JSON.stringify(String(digest).slice(0, 80))}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
    }
    const what = `blob ${t.host}/${repository}@${digest}`;
    const res = await this.#get(t, `/v2/${t.repository}/blobs/${digest}`, undefined, maxBytes, what);
    const actual = sha256Digest(res.body);
    if (actual !== digest) {
      throw new RegistryError('INVALID', `${what}: digest mismatch: the registry served content with digest ${actual}`);
    }
    return res.body;
  }

  /**
   * GET one page of a paginated JSON list: `_catalog` (`repository` null), `tags/list`,
   * `referrers/<digest>` (relative to the repository), or a `next` path as returned. `next` is the path of
   * the following page from the `Link: <…>; rel="next"` header (same registry only), or null.
   */
  async listPage(registry: string, repository: string | null, path: string): Promise<ListPage> {
    const t = this.#resolve(registry, repository ?? '');
    if (!path.startsWith('/v2/')) {
      // Relative to the repository (`tags/list`), or to /v2/ for the catalog (`_catalog`).
      path = repository === null ? `/v2/${path}` : `/v2/${t.repository}/${path}`;
    }
    const what = `list ${t.host}${path.split('?')[0]}`;
    const res = await this.#get(t, path, 'application/json, application/vnd.oci.image.index.v1+json', MAX_LIST_PAGE_BYTES, what);
    let body: unknown;
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError('INVALID', `${what}: the registry answered something that is not JSON`);
    }
    return { body, next: nextPageFromLink(res.headers.get('link'), new URL(t.origin).origin) };
  }

  /** The registry and repository as named, checked, and where to reach them. */
  #resolve(registry: string, repository: string): Target {
    const host = validateRegistryHost(registry);
    this.#hosts.checkRegistry(host);
    if (repository !== '') {
      // '' is the registry itself (the catalog).
      validateRepository(repository);
    }
    const dockerHub = normalizeRegistryHost(host) === 'docker.io';
    // Docker Hub's official images live under library/, at the API host or any mirror of it.
    const repo = dockerHub && repository !== '' && !repository.includes('/') ? `library/${repository}` : repository;
    return { host, origin: this.#hosts.origin(host, dockerHub ? DOCKER_HUB_API : host), repository: repo };
  }

  /** GET a registry API path: retries, the auth flow, then maps what is left to a RegistryError. */
  async #get(t: Target, path: string, accept: string | undefined, maxBytes: number, what: string): Promise<HttpResult> {
    const url = new URL(`${t.origin}${path}`);
    const res = await this.#transport.withRetries(what, () =>
      this.#transport.inSlot(t.host, () => this.#getAuthorized(t, url, accept, maxBytes, what)),
    );
    if (res.status >= 200 && res.status < 300) {
      return res;
    }
    throw errorForStatus(res.status, res.body, what);
  }

  /** One attempt: with the Authorization known up front, then once more if a 401's challenge gives a new one. */
  async #getAuthorized(t: Target, url: URL, accept: string | undefined, maxBytes: number, what: string): Promise<HttpResult> {
    const sent = await this.#upFrontAuthorization(t);
    const first = await this.#transport.send(url, withAuth(this.#headers(accept), sent), maxBytes, what);
    if (first.status !== 401) {
      return first;
    }
    const next = await this.#authorize(t, first, sent, what);
    if (next === undefined) {
      return first;
    }
    const second = await this.#transport.send(url, withAuth(this.#headers(accept), next), maxBytes, what);
    if (second.status === 401 && next.startsWith('Basic ')) {
      // Refused: a credential helper's answer may have been rotated; ask it again next time.
      this.#opts.credentials?.invalidate(t.host);
    }
    return second;
  }

  #headers(accept: string | undefined): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': this.#userAgent };
    if (accept !== undefined) {
      h.accept = accept;
    }
    return h;
  }

  async #upFrontAuthorization(t: Target): Promise<string | undefined> {
    const scope = this.#scopeOf.get(`${t.host} ${t.repository}`) ?? defaultScope(t);
    const token = this.#tokens.get(t.host, scope);
    if (token !== undefined) {
      return `Bearer ${token}`;
    }
    const cred = this.#basicHosts.has(t.host) ? await this.#opts.credentials?.resolve(t.host) : undefined;
    return cred === undefined || cred.identityToken !== undefined ? undefined : basicAuthorization(cred);
  }

  /** Answers a 401: the Authorization to retry with, or `undefined` when there is nothing to try. */
  async #authorize(t: Target, res: HttpResult, sent: string | undefined, what: string): Promise<string | undefined> {
    const challenges = parseWwwAuthenticate(res.headers.get('www-authenticate') ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined);
    const realm = bearer?.params.realm;
    if (bearer !== undefined && realm !== undefined) {
      return await this.#bearerAuthorization(t, realm, bearer, sent, what);
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      return await this.#basicAuthorization(t, sent);
    }
    return undefined;
  }

  /** A Bearer challenge: the cached token for its scope unless that is what was just refused, else a new one. */
  async #bearerAuthorization(t: Target, realm: string, bearer: AuthChallenge, sent: string | undefined, what: string): Promise<string> {
    const scope = bearer.params.scope ?? defaultScope(t);
    if (this.#scopeOf.size >= 10_000) {
      this.#scopeOf.clear();
    }
    this.#scopeOf.set(`${t.host} ${t.repository}`, scope);
    const cached = this.#tokens.get(t.host, scope);
    if (cached !== undefined && `Bearer ${cached}` !== sent) {
      return `Bearer ${cached}`;
    }
    this.#tokens.delete(t.host, scope);
    const token = await this.#fetchToken(t, realm, bearer.params.service, scope, what);
    return `Bearer ${token}`;
  }

  /** A Basic challenge: the configured credentials, unless none or those were just refused. */
  async #basicAuthorization(t: Target, sent: string | undefined): Promise<string | undefined> {
    const cred = await this.#opts.credentials?.resolve(t.host);
    // An identity token is only good at a token endpoint.
    const header = cred === undefined || cred.identityToken !== undefined ? undefined : basicAuthorization(cred);
    if (header !== undefined && header !== sent) {
      this.#basicHosts.add(t.host);
      return header;
    }
    return undefined;
  }

  /**
   * Asks the realm for a token for `scope` and caches it until shortly before it expires: with an
   * identity token, by the OAuth2 refresh-token grant (a POST, as docker and containerd send it);
   * otherwise a GET, with the host's credentials when configured.
   */
  async #fetchToken(t: Target, realm: string, service: string | undefined, scope: string, what: string): Promise<string> {
    const url = this.#realmUrl(t, realm, what);
    const scopes = scope.split(' ').filter((x) => x !== '');
    const headers = this.#headers('application/json');
    const cred = await this.#opts.credentials?.resolve(t.host);
    let form: URLSearchParams | undefined;
    if (cred?.identityToken !== undefined) {
      form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: this.#userAgent, scope: scopes.join(' ') });
      if (service !== undefined) {
        form.set('service', service);
      }
    } else {
      if (service !== undefined) {
        url.searchParams.set('service', service);
      }
      for (const s of scopes) {
        url.searchParams.append('scope', s);
      }
      if (cred !== undefined) {
        headers.authorization = basicAuthorization(cred);
      }
    }
    this.#opts.log.debug({ realm: safeUrl(url), scope, withCredentials: cred !== undefined, grant: form === undefined ? 'basic' : 'refresh_token' }, 'registry token request');
    const res = await this.#transport.send(url, headers, MAX_TOKEN_BODY_BYTES, `${what}: token request`, form);
    if (cred !== undefined && (res.status === 401 || res.status === 403)) {
      this.#opts.credentials?.invalidate(t.host);
    }
    checkTokenAnswer(res, url, cred !== undefined, what);
    const token = parseTokenResponse(res.body);
    this.#tokens.set(t.host, scope, token);
    return token.token;
  }

  /** The token realm a registry at `t` named, as a URL Signet may send its credentials to. */
  #realmUrl(t: Target, realm: string, what: string): URL {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError('INVALID', `${what}: the registry's token realm is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryError('REFUSED', `${what}: refusing a ${url.protocol} token realm`);
    }
    if (url.protocol === 'http:' && !this.#hosts.isInsecure(url)) {
      throw new RegistryError('REFUSED', `${what}: refusing plain-HTTP token realm ${safeUrl(url)} (host not in the insecure list)`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new RegistryError('REFUSED', `${what}: refusing a token realm carrying user info`);
    }
    if (!this.#hosts.mayGo(new URL(t.origin), url)) {
      throw new RegistryError('REFUSED', `${what}: refusing token realm on ${url.host}: not in SIGNET_ALLOWED_REDIRECT_HOSTS`);
    }
    return url;
  }
}

export function createRegistryClient(opts: RegistryClientOptions): RegistryClient {
  return new RegistryClient(opts);
}

function defaultScope(t: Target): string {
  return t.repository === '' ? 'registry:catalog:*' : `repository:${t.repository}:pull`;
}

function withAuth(h: Record<string, string>, authorization: string | undefined): Record<string, string> {
  return authorization === undefined ? h : { ...h, authorization };
}

/** Throws unless the token endpoint answered 2xx: TRANSIENT for 429, 408 and 5xx, UNAUTHORIZED otherwise. */
function checkTokenAnswer(res: HttpResult, url: URL, withCredentials: boolean, what: string): void {
  if (res.status === 429 || res.status === 408 || res.status >= 500) {
    throw new RegistryError('TRANSIENT', `${what}: token endpoint ${url.host} answered HTTP ${res.status}`, { status: res.status });
  }
  if (res.status < 200 || res.status >= 300) {
    const how = withCredentials ? 'the configured credentials' : 'anonymous access';
    throw new RegistryError('UNAUTHORIZED', `${what}: token endpoint ${url.host} refused ${how} (HTTP ${res.status})`, {
      status: res.status,
    });
  }
}

/**
 * The digest of a manifest's bytes, checked against the digest asked for (by digest) and against
 * the registry's `Docker-Content-Digest` header (when it sent a sha256 one).
 */
function verifiedManifestDigest(res: HttpResult, ref: Reference, what: string): Digest {
  const digest = sha256Digest(res.body);
  if (ref.kind === 'digest' && digest !== ref.digest) {
    throw new RegistryError('INVALID', `${what}: digest mismatch: the registry served content with digest ${digest}`);
  }
  const header = res.headers.get('docker-content-digest')?.trim();
  if (header !== undefined && isDigest(header) && header !== digest) {
    throw new RegistryError('INVALID', `${what}: digest mismatch: Docker-Content-Digest says ${header}, the content is ${digest}`);
  }
  return digest;
}
