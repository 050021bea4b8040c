import { normalizeRegistry } from './image-ref.ts';

/**
 * Which hosts Signet may contact: exact `host[:port]` names (case-insensitive) and `*.example.com`
 * patterns, which match any subdomain of example.com at any depth but not example.com itself.
 */
export interface HostAllowlist {
  readonly patterns: readonly string[];
  allows(host: string): boolean;
  /** `allows`, for a registry name: Docker Hub's aliases (`index.docker.io`, …) count as `docker.io`. */
  allowsRegistry(registry: string): boolean;
}

export function hostAllowlist(patterns: Iterable<string>): HostAllowlist {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  const all: string[] = [];
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase();
    if (p === '') {
      continue;
    }
    all.push(p);
    if (p.startsWith('*.')) {
      suffixes.push(p.slice(1));
    } else {
      exact.add(p);
    }
  }
  const allows = (host: string): boolean => {
    const h = host.toLowerCase();
    return exact.has(h) || suffixes.some((s) => h.endsWith(s) && !h.includes(':') && h.length > s.length);
  };
  return {
    patterns: all,
    allows,
    allowsRegistry: (registry) => allows(registry) || allows(normalizeRegistry(registry)),
  };
}

const LABELS = '[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*';

/** `host[:port]`, `[ipv6]:port`, or `*.domain` (no port with a wildcard). */
export const HOST_PATTERN = new RegExp(`^(\\*\\.${LABELS}|${LABELS}(:\\d{1,5})?|\\[[0-9a-f:]+\\](:\\d{1,5})?)$`, 'i');

/**
 * Hosts a Docker Hub fetch needs besides `docker.io`: the API, the token service and the blob CDN.
 * Allowed automatically when docker.io is.
 */
export const DOCKER_HUB_HOSTS = ['registry-1.docker.io', 'auth.docker.io', 'production.cloudflare.docker.com'] as const;
