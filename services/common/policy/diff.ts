import { globMatches, type Policy, type PolicyRules } from './policy.ts';

// What a policy edit can change in the decisions: which images must be decided again when the
// policy goes from `before` to `after`, by rule.
//
// An image's decision (evaluate.ts, `decide`) reads, for its registry: the rules of the top level
// and of each scope whose pattern matches its path (the most specific one wins), the winning
// rule's properties, the mode of its place (the policy's, or the scope's), and the list of scopes.
// Namespaces of scopes, exemptions and break-glass are read at admission only, never here. So an
// image none of whose candidate rules changed (same patterns, same properties, in every place) is
// decided exactly as before. Whatever cannot be put down to rules (the default mode, a scope's
// mode, scopes added or removed) changes every image: the whole ledger.

/** The rule patterns an edit touched, per registry (normalised host). */
export type ChangedPatterns = ReadonlyMap<string, ReadonlySet<string>>;

export type PolicyChange =
  /** Nothing a decision reads changed. */
  | { readonly kind: 'none' }
  /** Only images matched by one of `patterns` (changed, added or removed rules) can decide otherwise. */
  | { readonly kind: 'rules'; readonly patterns: ChangedPatterns; readonly rules: readonly string[] }
  /** A change not attributable to rules: every image is decided again. */
  | { readonly kind: 'all'; readonly reason: string };

/** What going from `before` to `after` changes in the decisions (see {@link PolicyChange}). */
export function diffPolicies(before: Policy, after: Policy): PolicyChange {
  if (before.version === after.version) {
    return { kind: 'none' };
  }
  if (before.mode !== after.mode) {
    return { kind: 'all', reason: `the default mode changed (${before.mode} → ${after.mode})` };
  }
  const scopesBefore = before.scopes.map((s) => s.name).join(',');
  const scopesAfter = after.scopes.map((s) => s.name).join(',');
  if (scopesBefore !== scopesAfter) {
    return { kind: 'all', reason: `scopes were added or removed ([${scopesBefore}] → [${scopesAfter}])` };
  }
  const changed = new Map<string, Set<string>>();
  const rules: string[] = [];
  const places: [PolicyRules, PolicyRules, string][] = [[before, after, '']];
  for (const [i, scope] of before.scopes.entries()) {
    const next = after.scopes[i]!;
    if (scope.mode !== next.mode) {
      return { kind: 'all', reason: `scope ${scope.name}'s mode changed (${scope.mode ?? 'inherited'} → ${next.mode ?? 'inherited'})` };
    }
    places.push([scope, next, `scopes.${scope.name}.`]);
  }
  const note = (prefix: string, section: string, registry: string, pattern: string) => {
    let set = changed.get(registry);
    if (set === undefined) {
      set = new Set();
      changed.set(registry, set);
    }
    set.add(pattern);
    rules.push(`${prefix}${section}.${registry}.${pattern}`);
  };
  for (const [old, next, prefix] of places) {
    for (const registry of new Set([...old.withVerification.keys(), ...next.withVerification.keys()])) {
      const a = new Map((old.withVerification.get(registry) ?? []).map((r) => [r.pattern, r.propertiesDigest]));
      const b = new Map((next.withVerification.get(registry) ?? []).map((r) => [r.pattern, r.propertiesDigest]));
      for (const pattern of new Set([...a.keys(), ...b.keys()])) {
        if (a.get(pattern) !== b.get(pattern)) {
          note(prefix, 'allow_with_verification', registry, pattern);
        }
      }
    }
    for (const registry of new Set([...old.withoutVerification.keys(), ...next.withoutVerification.keys()])) {
      const a = new Set(old.withoutVerification.get(registry) ?? []);
      const b = new Set(next.withoutVerification.get(registry) ?? []);
      for (const pattern of new Set([...a, ...b])) {
        if (a.has(pattern) !== b.has(pattern)) {
          note(prefix, 'allow_without_verification', registry, pattern);
        }
      }
    }
  }
  return changed.size === 0 ? { kind: 'none' } : { kind: 'rules', patterns: changed, rules: rules.sort() };
}

/**
 * Whether `registry/repository` may be decided otherwise after the change: true for every image
 * when the change is `all`, else when one of the touched patterns of its registry matches it.
 */
export function touches(change: PolicyChange, registry: string, repository: string): boolean {
  switch (change.kind) {
    case 'none':
      return false;
    case 'all':
      return true;
    case 'rules': {
      const patterns = change.patterns.get(registry);
      if (patterns === undefined) {
        return false;
      }
      for (const pattern of patterns) {
        if (globMatches(pattern, repository)) {
          return true;
        }
      }
      return false;
    }
  }
}
