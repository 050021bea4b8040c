import { normalizeRegistry } from '../../domain/image-ref.ts';

// What importing a peer's policy (policy-controller, Kyverno) writes: Signet policy properties,
// built up rule by rule, and every part of the peer's policy that Signet cannot express.

/** A Signet rule's properties, as the policy file spells them. */
export type RuleProps = Record<string, unknown>;

/** The two rule sections of a Signet policy, at its top level or in a scope. */
export interface RuleSections {
  allow_with_verification?: Record<string, Record<string, RuleProps>>;
  allow_without_verification?: Record<string, string[]>;
}

/** Where a peer's rule applies: everywhere (null), or in the namespaces of one scope. */
export type ImportScope = { readonly name: string; readonly namespaces: readonly string[] } | null;

/** What one import produced: the Signet policy document and what it could not carry over. */
export interface ImportResult {
  readonly policy: RuleSections & { scopes?: Record<string, RuleSections & { namespaces: string[] }> };
  /** Each part of the input Signet does not express, with where it is (`<Kind> <name>: <path>: why`). */
  readonly unexpressed: string[];
}

export interface ImportOptions {
  /** The registries an image pattern that names none (`**`, `*`) is written for. */
  readonly registries: readonly string[];
}

/** The Signet policy under construction, and the list of what was left out. */
export class PolicyBuilder {
  readonly result: ImportResult = { policy: {}, unexpressed: [] };

  /** Notes what `where` says that Signet cannot express. */
  cannot(where: string, why: string): void {
    this.result.unexpressed.push(`${where}: ${why}`);
  }

  /** Adds a rule for every (host, glob) in `scope`; the first rule written for a pattern there wins. */
  verify(targets: readonly ImageTarget[], rule: RuleProps, where: string, scope: ImportScope = null): void {
    for (const { host, glob } of targets) {
      const hosts = (this.#sections(scope).allow_with_verification ??= {});
      const rules = (hosts[host] ??= {});
      if (rules[glob] !== undefined) {
        this.cannot(where, `${host}/${glob} already has a rule from an earlier policy; Signet keeps one rule per pattern (the earlier one)`);
        continue;
      }
      rules[glob] = rule;
    }
  }

  allow(targets: readonly ImageTarget[], scope: ImportScope = null): void {
    for (const { host, glob } of targets) {
      const list = ((this.#sections(scope).allow_without_verification ??= {})[host] ??= []);
      if (!list.includes(glob)) {
        list.push(glob);
      }
    }
  }

  /**
   * Notes the patterns a scope and the top level both have a rule for: in the scope's namespaces
   * Signet applies the scope's rule alone, where Kyverno applies every matching policy.
   */
  finish(): void {
    const top = this.result.policy.allow_with_verification ?? {};
    for (const [name, scope] of Object.entries(this.result.policy.scopes ?? {})) {
      for (const [host, rules] of Object.entries(scope.allow_with_verification ?? {})) {
        for (const glob of Object.keys(rules).filter((g) => top[host]?.[g] !== undefined)) {
          this.cannot(`scopes.${name}`, `${host}/${glob} has a rule in the cluster-wide policies too: in namespaces ${scope.namespaces.join(', ')} Signet applies the namespaced one alone, not both`);
        }
      }
    }
  }

  #sections(scope: ImportScope): RuleSections {
    if (scope === null) {
      return this.result.policy;
    }
    const scopes = (this.result.policy.scopes ??= {});
    return (scopes[scope.name] ??= { namespaces: [...scope.namespaces] });
  }
}

/** A registry host and an image-path glob in Signet's form. */
export interface ImageTarget {
  readonly host: string;
  readonly glob: string;
}

const escapeRegexp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A peer's image pattern (`ghcr.io/org/*`, `**`, `index.docker.io/*`, `registry.io/org/app*`,
 * `…@sha256:…`) as Signet targets: the registry host (Docker Hub when the pattern names none) and
 * a path glob. Tags and digests are dropped (Signet's rules cover every tag and digest of a path):
 * what that widens is noted. `crossing` is whether a `*` of the peer's crosses `/` (Kyverno's does;
 * policy-controller's `*` does not, its `**` does).
 */
export function imageTargets(pattern: string, crossing: boolean, opts: ImportOptions, note: (why: string) => void): ImageTarget[] {
  let ref = pattern.trim();
  const at = ref.indexOf('@');
  if (at !== -1) {
    note(`${pattern}: pinned to ${ref.slice(at + 1)}; a Signet rule covers every digest of ${ref.slice(0, at)}`);
    ref = ref.slice(0, at);
  }
  const slash = ref.indexOf('/');
  const first = slash === -1 ? ref : ref.slice(0, slash);
  const namesHost = slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost' || /[*?]/.test(first));
  if (/^\*+$/.test(first) || (namesHost && /[*?]/.test(first))) {
    if (!/^\*+$/.test(first)) {
      note(`${pattern}: a wildcard in the registry host; written for ${opts.registries.length === 0 ? 'no registry' : opts.registries.join(', ')} (--registry)`);
    } else if (opts.registries.length === 0) {
      note(`${pattern}: matches every registry; Signet's policy is keyed by registry host: import again with --registry <host> for each registry it should cover`);
    }
    const path = slash === -1 ? '**' : pathGlob(ref.slice(slash + 1), crossing, pattern, note);
    return opts.registries.map((h) => ({ host: normalizeRegistry(h), glob: path }));
  }
  const host = namesHost ? normalizeRegistry(first) : 'docker.io';
  let path = namesHost ? ref.slice(slash + 1) : ref;
  if (host === 'docker.io' && !path.includes('/') && !/[*?]/.test(path)) {
    path = `library/${path}`;
  }
  return [{ host, glob: pathGlob(path, crossing, pattern, note) }];
}

/** The path part as a Signet glob: tag dropped, lower case, `*` segments crossing `/` as the peer's did. */
function pathGlob(path: string, crossing: boolean, pattern: string, note: (why: string) => void): string {
  let p = path;
  const colon = p.lastIndexOf(':');
  if (colon !== -1 && !p.slice(colon).includes('/')) {
    const tag = p.slice(colon + 1);
    if (tag !== '*' && tag !== '**') {
      note(`${pattern}: only tag ${tag}; a Signet rule covers every tag and digest of the path`);
    }
    p = p.slice(0, colon);
  }
  const segments = p.split('/').map((s) => {
    if (crossing && /^\*+$/.test(s)) {
      return '**';
    }
    if (crossing && s.endsWith('*') && !s.endsWith('**')) {
      // Kyverno's `app*` also matches `app:tag` (covered) and `app/sub` (not): said once.
      note(`${pattern}: Kyverno's * also crosses '/'; Signet's ${s} stays within one path segment`);
    }
    return s;
  });
  return segments.join('/').toLowerCase() || '**';
}

/** A peer's exact value or regular expression, as Signet's `certificate-<what>[-regexp]` properties. */
export function matcherProps(what: 'identity' | 'oidc-issuer', exact: string | undefined, regexp: string | undefined): RuleProps {
  if (regexp !== undefined) {
    // Peers match these anywhere in the value (Go's MatchString); written so that they mean the
    // same whether Signet anchors its patterns or not.
    const anchored = regexp.startsWith('^') && regexp.endsWith('$');
    return { [`certificate-${what}-regexp`]: anchored ? regexp : `.*(?:${regexp}).*` };
  }
  return exact === undefined ? {} : { [`certificate-${what}`]: exact };
}

/** Kyverno's wildcard subject (`*@nirmata.com`) as a regexp over the whole value. */
export function wildcardRegexp(value: string): string {
  return `^${value.split('*').map((part) => part.split('?').map(escapeRegexp).join('.')).join('.*')}$`;
}

/** Every PEM public key in a text (Kyverno's `publicKeys` may hold several). */
export function pemKeys(text: string): string[] {
  return text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Reports the keys of `obj` that `handled` does not name, each as not expressed. */
export function leftover(obj: Record<string, unknown>, handled: readonly string[], where: string, b: PolicyBuilder, why = 'not expressible in a Signet policy'): void {
  for (const key of Object.keys(obj)) {
    if (!handled.includes(key)) {
      b.cannot(`${where}.${key}`, why);
    }
  }
}
