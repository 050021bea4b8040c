import { compareSpecificity } from './evaluate.ts';
import { globMatches, type Policy } from './policy.ts';
import type { Exemption, PolicyScope } from './rollout.ts';

/** Namespaces (and repositories) remembered per policy before a cache starts over: a cluster has far fewer. */
const CACHE_LIMIT = 10_000;

/**
 * What the rollout controls of one policy say about a namespace, answered from memory: the
 * globs are matched once per namespace (and exemptions once per repository), then remembered, so
 * admission stays a lookup. Expiry is compared on every call, so an exemption stops applying on
 * time with no reload.
 */
export class NamespaceIndex {
  readonly #policy: Policy;
  readonly #scopes = new Map<string, PolicyScope | null>();
  readonly #breakGlass = new Map<string, boolean>();
  readonly #exemptions = new Map<string, readonly Exemption[]>();

  constructor(policy: Policy) {
    this.#policy = policy;
  }

  /**
   * The scope whose most specific namespace glob matches `namespace` (a name beats a glob, then
   * more literal characters, then fewer wildcards, then the glob's text); null when none does, or
   * for cluster-scoped requests (no namespace).
   */
  scopeOf(namespace: string | null | undefined): PolicyScope | null {
    if (namespace === null || namespace === undefined || namespace === '' || this.#policy.scopes.length === 0) {
      return null;
    }
    return remember(this.#scopes, namespace, () => {
      let best: { pattern: string; section: number; scope: PolicyScope } | null = null;
      for (const scope of this.#policy.scopes) {
        for (const pattern of scope.namespaces) {
          const candidate = { pattern, section: 0, scope };
          if (globMatches(pattern, namespace) && (best === null || compareSpecificity(candidate, best) < 0)) {
            best = candidate;
          }
        }
      }
      return best?.scope ?? null;
    });
  }

  /** Whether the break-glass annotation is honoured in `namespace`. */
  breakGlassAllowed(namespace: string | null | undefined): boolean {
    if (namespace === null || namespace === undefined || namespace === '') {
      return false;
    }
    return remember(this.#breakGlass, namespace, () => this.#policy.breakGlassNamespaces.some((p) => globMatches(p, namespace)));
  }

  /** The exemption covering `registry/repository` in `namespace` at `now` (epoch ms), the first written wins. */
  exemptionFor(registry: string, repository: string, namespace: string | null | undefined, now: number): Exemption | null {
    if (this.#policy.exemptions.length === 0) {
      return null;
    }
    const candidates = remember(this.#exemptions, `${registry}/${repository}`, () =>
      this.#policy.exemptions.filter((e) => e.images.some((i) => i.registry === registry && globMatches(i.pattern, repository))),
    );
    for (const e of candidates) {
      if (now < e.expires && (e.namespaces === null || (namespace !== null && namespace !== undefined && e.namespaces.some((p) => globMatches(p, namespace))))) {
        return e;
      }
    }
    return null;
  }
}

function remember<V>(cache: Map<string, V>, key: string, compute: () => V): V {
  if (cache.has(key)) {
    return cache.get(key)!;
  }
  if (cache.size >= CACHE_LIMIT) {
    cache.clear();
  }
  const value = compute();
  cache.set(key, value);
  return value;
}

const indexes = new WeakMap<Policy, NamespaceIndex>();

/** The (one, shared) namespace index of a policy. */
export function namespaceIndex(policy: Policy): NamespaceIndex {
  let index = indexes.get(policy);
  if (index === undefined) {
    index = new NamespaceIndex(policy);
    indexes.set(policy, index);
  }
  return index;
}
