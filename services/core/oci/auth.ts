import { readFile } from 'node:fs/promises';
import { RegistryError } from '../../common/errors.ts';
import { DEFAULT_HELPER_TIMEOUT_MS, HELPER_NAME, IDENTITY_TOKEN_USERNAME, runCredentialHelper } from './credential-helper.ts';

/** A user name and password (or personal access token) for one registry host. */
export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
  /**
   * An identity token (an OAuth2 refresh token: `identitytoken` in `config.json`, or a credential
   * helper's `<token>` answer), traded at the registry's token endpoint for access tokens with
   * the refresh-token grant, as docker and containerd do.
   */
  readonly identityToken?: string;
}

/** Docker credential helpers: `credHelpers` (per registry) and `credsStore` (every other registry). */
export interface CredentialHelpers {
  /** Normalized host → helper name (`docker-credential-<name>`). */
  readonly byHost: Readonly<Record<string, string>>;
  readonly store: string | null;
}

/** Registry credentials keyed by host[:port]. Keys are normalized with {@link normalizeRegistryHost}. */
export interface CredentialStore {
  /** The static credentials for a registry (`auths`, the registries file); never runs a helper. */
  get(registry: string): RegistryCredentials | undefined;
  /**
   * The credentials to use for a registry now: its credential helper's answer (cached until
   * shortly before the secret expires, at most a few minutes), else the static ones. Throws
   * `RegistryError` when a helper cannot be run (see `runCredentialHelper`).
   */
  resolve(registry: string): Promise<RegistryCredentials | undefined>;
  /** Forgets a helper's cached answer for a registry that refused it (the next `resolve` asks again). */
  invalidate(registry: string): void;
  /** Normalized hosts that have credentials (never the credentials themselves). */
  readonly hosts: readonly string[];
  readonly helpers: CredentialHelpers;
  /** Entries or features of the file that were ignored; safe to log. */
  readonly warnings: readonly string[];
}

/** The credentials file cannot be read or is not a Docker `config.json`. Never includes secrets. */
export class CredentialsFileError extends Error {
  override readonly name = 'CredentialsFileError';
}

/** Every name Docker Hub is known by; they share one set of credentials under `docker.io`. */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/**
 * A `config.json` `auths` key or a registry name → `host[:port]`, lower-case.
 * `https://index.docker.io/v1/` → `docker.io`; `http://reg:5000/` → `reg:5000`; `reg:5000/path` → `reg:5000`.
 */
export function normalizeRegistryHost(key: string): string {
  let k = key.trim().toLowerCase();
  if (k.includes('://')) {
    try {
      k = new URL(k).host;
    } catch {
      k = k.slice(k.indexOf('://') + 3);
    }
  }
  const slash = k.indexOf('/');
  if (slash !== -1) {
    k = k.slice(0, slash);
  }
  return DOCKER_HUB.has(k) ? 'docker.io' : k;
}

const NO_HELPERS: CredentialHelpers = Object.freeze({ byHost: Object.freeze({}), store: null });

export function credentialStoreFrom(
  entries: Iterable<readonly [string, RegistryCredentials]>,
  warnings: readonly string[] = [],
  helpers: CredentialHelpers = NO_HELPERS,
  helperCache: HelperCacheOptions = {},
): CredentialStore {
  const map = new Map<string, RegistryCredentials>();
  for (const [key, cred] of entries) {
    const { username, password, identityToken } = cred;
    map.set(normalizeRegistryHost(key), Object.freeze(identityToken === undefined ? { username, password } : { username, password, identityToken }));
  }
  const get = (registry: string): RegistryCredentials | undefined => map.get(normalizeRegistryHost(registry));
  const cache = createHelperCache(helperCache);
  return Object.freeze({
    get,
    async resolve(registry: string): Promise<RegistryCredentials | undefined> {
      const host = normalizeRegistryHost(registry);
      // As the Docker CLI: a registry's own helper first, then its auths entry, then credsStore.
      const perHost = helpers.byHost[host];
      if (perHost !== undefined) {
        return (await cache.get(perHost, host)) ?? get(host);
      }
      const fixed = get(host);
      if (fixed !== undefined || helpers.store === null) {
        return fixed;
      }
      return (await cache.get(helpers.store, host)) ?? undefined;
    },
    invalidate: (registry: string) => cache.forget(normalizeRegistryHost(registry)),
    hosts: Object.freeze([...map.keys()]),
    helpers,
    warnings: Object.freeze([...warnings]),
  });
}

export interface HelperCacheOptions {
  /** Longest a helper's answer is reused (default 5 minutes): helpers hand out short-lived secrets. */
  readonly maxAgeMs?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** How a helper is run (tests count the runs). */
  readonly run?: (name: string, serverUrl: string, timeoutMs: number) => Promise<RegistryCredentials | null>;
}

export const HELPER_CACHE_MAX_AGE_MS = 5 * 60_000;

/**
 * Helper answers per host, reused until `maxAgeMs` or, when the secret is a JWT (GAR, ACR and
 * most identity tokens), until {@link TOKEN_EXPIRY_MARGIN_MS} before its `exp`: a secret is
 * refreshed before it expires, not after a registry refused it. Concurrent asks share one run.
 */
function createHelperCache(opts: HelperCacheOptions): { get(name: string, host: string): Promise<RegistryCredentials | null>; forget(host: string): void } {
  const now = opts.now ?? Date.now;
  const maxAge = opts.maxAgeMs ?? HELPER_CACHE_MAX_AGE_MS;
  const runHelper = opts.run ?? runCredentialHelper;
  const entries = new Map<string, { at: Promise<RegistryCredentials | null>; until: number }>();
  return {
    get(name, host) {
      const hit = entries.get(host);
      if (hit !== undefined && now() < hit.until) {
        return hit.at;
      }
      const at = runHelper(name, helperServerUrl(host), opts.timeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS);
      const entry = { at, until: now() + maxAge };
      entries.set(host, entry);
      at.then(
        (cred) => {
          const exp = jwtExpiry(cred?.identityToken ?? cred?.password);
          if (exp !== null) {
            entry.until = Math.min(entry.until, exp - Math.min(TOKEN_EXPIRY_MARGIN_MS * 6, (exp - now()) / 2));
          }
        },
        () => entries.delete(host),
      );
      return at;
    },
    forget(host) {
      entries.delete(host);
    },
  };
}

/** The server URL helpers are asked about: the host, or Docker Hub's legacy index URL (as `docker login` stores it). */
function helperServerUrl(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

/** The `exp` (ms) of a JWT-shaped secret; null for anything else. */
export function jwtExpiry(secret: string | undefined): number | null {
  const parts = secret?.split('.');
  if (parts?.length !== 3) {
    return null;
  }
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Parses the text of a Docker `config.json`: `auths` entries with `auth` (base64 of
 * `user:password`; it wins over `username`+`password`, as in the Docker CLI) or an
 * `identitytoken`; `credHelpers` (registry → helper) and `credsStore` (the helper for every other
 * registry), run when credentials are needed (see {@link CredentialStore.resolve}).
 */
export function parseDockerConfig(text: string, source = 'config.json', helperCache: HelperCacheOptions = {}): CredentialStore {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CredentialsFileError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CredentialsFileError(`${source} must be a JSON object with an "auths" object`);
  }
  const doc = raw as Record<string, unknown>;
  const helpers = parseHelpers(doc, source);
  const auths = doc.auths ?? {};
  if (auths === null || typeof auths !== 'object' || Array.isArray(auths)) {
    throw new CredentialsFileError(`${source}: "auths" must be an object`);
  }
  const entries: [string, RegistryCredentials][] = [];
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    const entry = authsEntry(key, value, `${source}: auths[${JSON.stringify(key)}]`);
    if (entry !== null) {
      entries.push([key, entry]);
    }
  }
  return credentialStoreFrom(entries, [], helpers, helperCache);
}


function parseHelpers(doc: Record<string, unknown>, source: string): CredentialHelpers {
  const { credsStore, credHelpers } = doc;
  if (credsStore !== undefined && credsStore !== '' && (typeof credsStore !== 'string' || !HELPER_NAME.test(credsStore))) {
    throw new CredentialsFileError(`${source}: "credsStore" must be a helper name (docker-credential-<name>)`);
  }
  if (credHelpers !== undefined && (credHelpers === null || typeof credHelpers !== 'object' || Array.isArray(credHelpers))) {
    throw new CredentialsFileError(`${source}: "credHelpers" must be an object (registry → helper name)`);
  }
  const byHost: Record<string, string> = {};
  for (const [key, name] of Object.entries((credHelpers ?? {}) as Record<string, unknown>)) {
    if (typeof name !== 'string' || !HELPER_NAME.test(name)) {
      throw new CredentialsFileError(`${source}: credHelpers[${JSON.stringify(key)}] must be a helper name (docker-credential-<name>)`);
    }
    byHost[normalizeRegistryHost(key)] = name;
  }
  return Object.freeze({ byHost: Object.freeze(byHost), store: typeof credsStore === 'string' && credsStore !== '' ? credsStore : null });
}

/** One `auths` entry: credentials, or null for an empty entry ({} is what `docker login` leaves when a helper holds the secret). */
function authsEntry(key: string, value: unknown, where: string): RegistryCredentials | null {
  if (normalizeRegistryHost(key) === '') {
    throw new CredentialsFileError(`${where}: empty registry name`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CredentialsFileError(`${where} must be an object`);
  }
  const entry = value as Record<string, unknown>;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const b64 = entry.auth.trim();
    const decoded = BASE64.test(b64) ? Buffer.from(b64, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new CredentialsFileError(`${where}.auth must be base64 of "username:password"`);
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined || entry.password !== undefined) {
    if (typeof entry.username !== 'string' || entry.username === '' || typeof entry.password !== 'string') {
      throw new CredentialsFileError(`${where} needs a non-empty string "username" and a string "password"`);
    }
    return { username: entry.username, password: entry.password };
  }
  if (entry.identitytoken !== undefined) {
    if (typeof entry.identitytoken !== 'string' || entry.identitytoken === '') {
      throw new CredentialsFileError(`${where}.identitytoken must be a non-empty string`);
    }
    return { username: IDENTITY_TOKEN_USERNAME, password: '', identityToken: entry.identitytoken };
  }
  return null;
}

/** Reads a Docker `config.json` (e.g. `SIGNET_REGISTRY_AUTH_FILE`). Throws {@link CredentialsFileError}. */
export async function loadRegistryCredentials(path: string, helperCache: HelperCacheOptions = {}): Promise<CredentialStore> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new CredentialsFileError(`cannot read the registry credentials file ${path}: ${code}`, { cause: err });
  }
  return parseDockerConfig(text, path, helperCache);
}

export function basicAuthorization(cred: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${cred.username}:${cred.password}`, 'utf8').toString('base64')}`;
}

/** One challenge of a `WWW-Authenticate` header; scheme and parameter names are lower-cased. */
export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1): one or more challenges, each a scheme
 * followed by `name=value` parameters, values optionally quoted (quoted values may contain commas,
 * `=` and `\"` escapes). Garbage is skipped rather than thrown on; the first value of a repeated
 * parameter wins.
 *
 * @example parseWwwAuthenticate('Bearer realm="https://auth/token",service="reg",scope="repository:a/b:pull,push"')
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const n = header.length;
  let i = 0;
  let current: { scheme: string; params: Record<string, string> } | null = null;
  const skipWs = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) {
      i++;
    }
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TCHAR.test(header.charAt(i))) {
      i++;
    }
    return header.slice(start, i);
  };
  while (i < n) {
    skipWs();
    if (i >= n) {
      break;
    }
    if (header[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      i++; // not a token character: skip it
      continue;
    }
    skipWs();
    if (header[i] === '=') {
      i++;
      skipWs();
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) {
            i++;
          }
          value += header.charAt(i);
          i++;
        }
        i++; // closing quote (or end)
      } else {
        const start = i;
        while (i < n && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') {
          i++;
        }
        value = header.slice(start, i);
      }
      const name = token.toLowerCase();
      if (current !== null && !Object.hasOwn(current.params, name)) {
        current.params[name] = value;
      }
    } else {
      current = { scheme: token.toLowerCase(), params: Object.create(null) as Record<string, string> };
      out.push(current);
    }
  }
  return out;
}

/** What a token endpoint answered. */
export interface BearerToken {
  readonly token: string;
  /** Lifetime the server granted, in seconds (60 when it said nothing, as the token spec says). */
  readonly expiresInSec: number;
}

export const DEFAULT_TOKEN_TTL_SEC = 60;
/** Cached tokens are dropped this long before they expire (at most half their lifetime). */
export const TOKEN_EXPIRY_MARGIN_MS = 10_000;

// A token goes into an HTTP header: visible ASCII only (JWTs and opaque tokens are).
const TOKEN_RE = /^[\x21-\x7e]{1,16384}$/;

/** Parses a token endpoint's JSON (`token` or `access_token`, optional `expires_in`). */
export function parseTokenResponse(body: Uint8Array): BearerToken {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    throw new RegistryError('UNAUTHORIZED', 'the token endpoint did not answer JSON');
  }
  const doc = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) {
    throw new RegistryError('UNAUTHORIZED', 'the token endpoint answered without a usable token');
  }
  const exp = doc.expires_in;
  const expiresInSec = typeof exp === 'number' && Number.isFinite(exp) && exp > 0 ? exp : DEFAULT_TOKEN_TTL_SEC;
  return { token, expiresInSec };
}

/** Bearer tokens per (registry host, scope), each until its expiry minus a margin. */
export interface TokenCache {
  get(host: string, scope: string): string | undefined;
  set(host: string, scope: string, token: BearerToken): void;
  delete(host: string, scope: string): void;
}

export function createTokenCache(now: () => number = Date.now): TokenCache {
  const entries = new Map<string, { token: string; expiresAt: number }>();
  const key = (host: string, scope: string): string => `${host.toLowerCase()} ${scope}`;
  return {
    get(host, scope) {
      const k = key(host, scope);
      const e = entries.get(k);
      if (e === undefined) {
        return undefined;
      }
      if (now() >= e.expiresAt) {
        entries.delete(k);
        return undefined;
      }
      return e.token;
    },
    set(host, scope, token) {
      const lifetimeMs = token.expiresInSec * 1000;
      const margin = Math.min(TOKEN_EXPIRY_MARGIN_MS, lifetimeMs / 2);
      if (entries.size >= 1000) {
        // Bounded: drop the oldest entry (Map keeps insertion order).
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) {
          entries.delete(oldest);
        }
      }
      entries.set(key(host, scope), { token: token.token, expiresAt: now() + lifetimeMs - margin });
    },
    delete(host, scope) {
      entries.delete(key(host, scope));
    },
  };
}
