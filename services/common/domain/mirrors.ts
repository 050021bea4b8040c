import type { ImageReference } from './image-ref.ts';

/**
 * A registry that mirrors another: `mirror.internal:5000/<prefix>/<path>` holds the same
 * manifests, byte for byte (so the same digests), as `<source>/<path>`.
 */
export interface Mirror {
  /** The mirror's host, as image references name it (normalized). */
  readonly host: string;
  /** The registry it copies (normalized), e.g. `docker.io`. */
  readonly source: string;
  /** The mirror's path under which the source's repositories sit (`dockerhub`), or '' for none. */
  readonly prefix: string;
}

/**
 * The source image a reference by digest to a mirror stands for: same digest, the source's
 * registry and repository. A reference by tag is left alone: a mirror's tag may lag behind the
 * source's (a pull-through cache keeps it for a while), so only a digest names the same image in
 * both; and so is any reference that is not under a mirror's prefix.
 *
 * @example
 * toSource({ registry: 'mirror.internal', repository: 'dockerhub/library/nginx', tag: null, digest },
 *          [{ host: 'mirror.internal', source: 'docker.io', prefix: 'dockerhub' }])
 * // → { registry: 'docker.io', repository: 'library/nginx', tag: null, digest }
 */
export function toSource(ref: ImageReference, mirrors: readonly Mirror[]): ImageReference {
  if (ref.digest === null) {
    return ref;
  }
  for (const m of mirrors) {
    if (m.host !== ref.registry) {
      continue;
    }
    if (m.prefix === '') {
      return { ...ref, registry: m.source };
    }
    if (ref.repository.startsWith(`${m.prefix}/`)) {
      return { ...ref, registry: m.source, repository: ref.repository.slice(m.prefix.length + 1) };
    }
  }
  return ref;
}
