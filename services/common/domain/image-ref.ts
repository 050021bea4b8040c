import { isDigest, type Digest } from './digest.ts';

/**
 * Repository names as the OCI distribution spec defines them: lowercase path components joined by
 * `/`, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 characters in all.
 */
const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

export function isRepositoryName(name: string): boolean {
  return name.length <= 255 && REPOSITORY.test(name);
}

export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/** A lower-case registry host (DNS name, IPv4 or bracketed IPv6), optionally with a port 1–65535. */
export function isRegistryHost(host: string): boolean {
  if (host.length > 255 || !HOST.test(host)) {
    return false;
  }
  const port = /:(\d{1,5})$/.exec(host)?.[1];
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
}

/** An image reference normalised as Docker does: `nginx` → `docker.io/library/nginx:latest`. */
export interface ImageReference {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: Digest | null;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** `index.docker.io` and friends are `docker.io`; every other host is lower-cased as given. */
export function normalizeRegistry(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? 'docker.io' : h;
}

export class ImageReferenceError extends Error {
  override readonly name = 'ImageReferenceError';
}

/**
 * Parses `[host[:port]/]path[:tag][@sha256:…]` the way Docker does: the first component is a
 * registry only if it contains `.` or `:` or is `localhost`; Docker Hub names get `library/`; a
 * reference with neither tag nor digest means `:latest`. Throws {@link ImageReferenceError}.
 */
export function parseImageReference(ref: string): ImageReference {
  if (ref.length === 0 || ref.length > 1024 || /\s/.test(ref)) {
    throw new ImageReferenceError(`invalid image reference ${JSON.stringify(ref.slice(0, 100))}`);
  }
  let rest = ref;
  let digest: Digest | null = null;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) {
      throw new ImageReferenceError(`invalid digest in ${JSON.stringify(ref.slice(0, 200))}: only sha256:<64 hex> is accepted`);
    }
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) {
      throw new ImageReferenceError(`invalid tag ${JSON.stringify(tag.slice(0, 140))} in ${JSON.stringify(ref.slice(0, 200))}`);
    }
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const hasHost = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasHost ? normalizeRegistry(first) : 'docker.io';
  let repository = hasHost ? rest.slice(slash + 1) : rest;
  if (registry === 'docker.io' && !repository.includes('/')) {
    repository = `library/${repository}`;
  }
  registry = registry.toLowerCase();
  if (!isRegistryHost(registry) || !isRepositoryName(repository)) {
    throw new ImageReferenceError(`invalid image reference ${JSON.stringify(ref.slice(0, 200))}`);
  }
  return { registry, repository, tag: tag ?? (digest === null ? 'latest' : null), digest };
}

export function formatImageReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag === null ? '' : `:${r.tag}`}${r.digest === null ? '' : `@${r.digest}`}`;
}
