import { RegistryError } from '../../common/errors.ts';
import { DOCKER_HUB_HOSTS, hostAllowlist, type HostAllowlist } from '../../common/domain/host-allowlist.ts';

export interface HostPolicyOptions {
  /** `host[:port]` names spoken to over plain HTTP; every other host is HTTPS only. */
  readonly insecureHosts: readonly string[];
  /**
   * Where to reach a registry whose name (as it appears in events and the ledger) is not where
   * Signet can reach it, e.g. `localhost:5000` → `http://registry:5000` inside docker compose.
   * An `http://` endpoint is spoken to over plain HTTP.
   */
  readonly endpoints?: Readonly<Record<string, string>>;
  /**
   * The registries Signet may contact (host patterns, see `hostAllowlist`); a request for any other
   * is refused before anything is sent. Unset: any registry (tools and tests that build a client
   * for one known registry).
   */
  readonly allowedRegistries?: readonly string[];
  /**
   * With `allowedRegistries`: the other hosts a registry may redirect to (blob storage, CDNs) or
   * name as its token realm. A registry's own host and the allowed registries always are.
   */
  readonly allowedRedirectHosts?: readonly string[];
}

/**
 * Which hosts Signet may contact and how: the registries it may ask, where each one is reached,
 * which hosts speak plain HTTP, and where a registry may send it (redirects, token realms).
 */
export class HostPolicy {
  /** `host[:port]` as `URL.host` spells it. */
  readonly #insecure: Set<string>;
  readonly #endpoints: Map<string, URL>;
  /** Null: any registry. */
  readonly #allowed: HostAllowlist | null;
  /** Where a redirect or a token realm may lead besides the registry's own host; null: anywhere. */
  readonly #elsewhere: HostAllowlist | null;

  constructor(opts: HostPolicyOptions) {
    this.#insecure = new Set(opts.insecureHosts.map((h) => urlHost('http:', h.trim().toLowerCase())));
    this.#endpoints = new Map(Object.entries(opts.endpoints ?? {}).map(([name, base]) => [name.toLowerCase(), new URL(base)]));
    for (const endpoint of this.#endpoints.values()) {
      if (endpoint.protocol === 'http:') {
        this.#insecure.add(endpoint.host);
      }
    }
    this.#allowed = opts.allowedRegistries === undefined ? null : hostAllowlist(opts.allowedRegistries);
    const dockerHubAllowed = this.#allowed?.allows('docker.io') === true;
    this.#elsewhere =
      opts.allowedRegistries === undefined
        ? null
        : hostAllowlist([...(opts.allowedRedirectHosts ?? []), ...opts.allowedRegistries, ...(dockerHubAllowed ? DOCKER_HUB_HOSTS : [])]);
  }

  /** Throws `RegistryError('REFUSED')` unless `host` (lower-cased) is a registry Signet may contact. */
  checkRegistry(host: string): void {
    if (this.#allowed !== null && !this.#allowed.allowsRegistry(host)) {
      throw new RegistryError(
        'REFUSED',
        `registry ${host} is not one Signet may contact: add it to SIGNET_ALLOWED_REGISTRIES (or the registries file)`,
      );
    }
  }

  /**
   * The origin to reach the registry named `host` at: its configured endpoint, else `apiHost`
   * over HTTPS (plain HTTP when it is in the insecure list).
   */
  origin(host: string, apiHost: string): string {
    const endpoint = this.#endpoints.get(host);
    if (endpoint !== undefined) {
      return endpoint.origin;
    }
    const secure = !this.#insecure.has(urlHost('http:', apiHost));
    return `${secure ? 'https' : 'http'}://${apiHost}`;
  }

  isInsecure(url: URL): boolean {
    return this.#insecure.has(url.host);
  }

  /** May a redirect or a token realm of a registry at `from` take Signet to `to`? */
  mayGo(from: URL, to: URL): boolean {
    return this.#elsewhere === null || to.host === from.host || this.#elsewhere.allows(to.host);
  }
}

function urlHost(protocol: 'http:' | 'https:', host: string): string {
  try {
    return new URL(`${protocol}//${host}`).host;
  } catch {
    return host;
  }
}
