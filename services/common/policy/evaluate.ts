import type { AttestationCheck, Decision, DecisionMode, ManifestFacts, ScopedDecision, SignatureFact, Signer } from '../domain/decision.ts';
import { checkAttestations } from './attestations.ts';
import { globMatches, matches, type Policy, type PolicyRules, type VerificationRule } from './policy.ts';
import type { PolicyScope } from './rollout.ts';

/** The policy entry that governs an image, and the mode its denials get (`mode`). */
export type PolicyMatch =
  | { readonly kind: 'verify'; readonly rule: VerificationRule; readonly name: string; readonly mode: DecisionMode }
  | { readonly kind: 'allow'; readonly pattern: string; readonly name: string; readonly mode: DecisionMode }
  | { readonly kind: 'none'; readonly mode: DecisionMode };

const WILDCARD = /[*?[\]{}]/g;

/**
 * Orders candidate patterns: a pattern without wildcards beats any glob; then more literal
 * characters; then fewer wildcards; then allow_with_verification before
 * allow_without_verification; then the pattern's text. Total and deterministic, so the same image
 * always meets the same rule (Styra's snippet gives "no guarantee" here).
 */
export function specificity(pattern: string): [number, number, number] {
  const wildcards = (pattern.match(WILDCARD) ?? []).length;
  return [wildcards === 0 ? 0 : 1, -(pattern.length - wildcards), wildcards];
}

/** Orders two patterns by {@link specificity}, then `section`, then text: negative when `a` wins. */
export function compareSpecificity(a: { pattern: string; section: number }, b: { pattern: string; section: number }): number {
  const sa = specificity(a.pattern);
  const sb = specificity(b.pattern);
  for (let i = 0; i < sa.length; i++) {
    if (sa[i] !== sb[i]) {
      return sa[i]! - sb[i]!;
    }
  }
  if (a.section !== b.section) {
    return a.section - b.section;
  }
  return a.pattern < b.pattern ? -1 : a.pattern > b.pattern ? 1 : 0;
}

/**
 * The single policy entry that governs `registry/repository` (registry already normalised) in
 * `scope`'s namespaces, or outside every scope when it is null. A scope's own rules and the
 * policy's top-level ones compete by pattern specificity; at equal specificity the scope's win.
 */
export function matchPolicy(policy: Policy, registry: string, repository: string, scope: PolicyScope | null = null): PolicyMatch {
  const candidates: { pattern: string; section: number; match: PolicyMatch }[] = [];
  const places: [PolicyRules, string][] = scope === null ? [[policy, '']] : [[scope, `scopes.${scope.name}.`], [policy, '']];
  const placeMode = scope?.mode ?? policy.mode;
  places.forEach(([rules, prefix], level) => {
    for (const rule of rules.withVerification.get(registry) ?? []) {
      if (globMatches(rule.pattern, repository)) {
        const name = `${prefix}allow_with_verification.${registry}.${rule.pattern}`;
        candidates.push({ pattern: rule.pattern, section: level * 2, match: { kind: 'verify', rule, name, mode: rule.mode ?? placeMode } });
      }
    }
    for (const pattern of rules.withoutVerification.get(registry) ?? []) {
      if (globMatches(pattern, repository)) {
        const name = `${prefix}allow_without_verification.${registry}.${pattern}`;
        candidates.push({ pattern, section: level * 2 + 1, match: { kind: 'allow', pattern, name, mode: placeMode } });
      }
    }
  });
  candidates.sort(compareSpecificity);
  return candidates[0]?.match ?? { kind: 'none', mode: placeMode };
}

/** GitHub workflow claims as cosign's `--certificate-github-workflow-*` flags read them, v1 OIDs first. */
function githubClaim(claims: Readonly<Record<string, string>>, which: keyof VerificationRuleGithub): string | undefined {
  switch (which) {
    case 'repository':
      return claims.githubWorkflowRepository ?? claims.sourceRepositoryUri?.replace(/^https:\/\/github\.com\//, '');
    case 'ref':
      return claims.githubWorkflowRef ?? claims.sourceRepositoryRef;
    case 'sha':
      return claims.githubWorkflowSha ?? claims.sourceRepositoryDigest;
    case 'trigger':
      return claims.githubWorkflowTrigger ?? claims.buildTrigger;
    case 'name':
      return claims.githubWorkflowName;
  }
}
type VerificationRuleGithub = Required<Extract<VerificationRule, { kind: 'keyless' }>['github']>;

/** Whether one verified signature satisfies the rule; returns the signer it counts as, or why not. */
export function satisfies(rule: VerificationRule, sig: SignatureFact): { signer: Signer } | { miss: string } {
  for (const [k, want] of Object.entries(rule.annotations)) {
    const got = sig.annotations?.[k];
    if (got !== want) {
      return { miss: `annotation ${k}=${JSON.stringify(got ?? null)}, want ${JSON.stringify(want)}` };
    }
  }
  if (rule.kind === 'key') {
    const key = rule.keys.find((k) => k.fingerprint === sig.keyFingerprint);
    if (key === undefined || sig.identity?.kind !== 'key') {
      return { miss: 'not signed by a key the rule names' };
    }
    if (!rule.ignoreTlog && !sig.tlog) {
      return { miss: 'no Rekor entry (set insecure-ignore-tlog to accept key signatures without one)' };
    }
    return { signer: { subject: key.fingerprint, issuer: null } };
  }
  const id = sig.identity;
  if (id === null || id.kind === 'key') {
    return { miss: 'not a keyless (certificate) signature' };
  }
  if (!matches(rule.identity, id.subject)) {
    return { miss: `identity ${id.subject} does not match` };
  }
  if (!matches(rule.issuer, id.issuer)) {
    return { miss: `issuer ${id.issuer ?? '(none)'} does not match` };
  }
  for (const [which, want] of Object.entries(rule.github) as [keyof VerificationRuleGithub, string | undefined][]) {
    if (want !== undefined && githubClaim(sig.claims, which) !== want) {
      return { miss: `GitHub workflow ${which} is ${githubClaim(sig.claims, which) ?? '(absent)'}, want ${want}` };
    }
  }
  return { signer: { subject: id.subject, issuer: id.issuer } };
}

/**
 * Decides whether the image described by `facts` may run under `policy`, at `now`: outside every
 * namespace scope, and in each scope where the answer differs (`scoped`). Pure: everything it
 * needs was stored when the image was indexed. `facts === null` means Signet has never seen the
 * digest. An image its signatures admit must also meet the governing rule's attestation
 * requirements (in each scope, the rule that governs there); a decision whose rules require
 * attestations carries `expiresAt`: the earliest time any of its variants changes by time alone.
 */
export function decide(policy: Policy, registry: string, repository: string, facts: ManifestFacts | null, now: Date = new Date()): Decision {
  const everywhere = decideIn(policy, null, registry, repository, facts, now);
  const scoped: Record<string, ScopedDecision> = {};
  for (const scope of policy.scopes) {
    const d = decideIn(policy, scope, registry, repository, facts, now);
    if (!sameDecision(d, everywhere)) {
      scoped[scope.name] = d;
    }
  }
  const variants = [everywhere, ...Object.values(scoped)];
  const expiry = variants.some((v) => v.attestations !== undefined) ? { expiresAt: earliest(variants.flatMap((v) => v.attestations ?? [])) } : {};
  return { ...everywhere, policyVersion: policy.version, ...(Object.keys(scoped).length > 0 ? { scoped } : {}), ...expiry };
}

function sameDecision(a: ScopedDecision, b: ScopedDecision): boolean {
  return (
    a.allowed === b.allowed &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.rule === b.rule &&
    a.mode === b.mode &&
    JSON.stringify(a.signers) === JSON.stringify(b.signers) &&
    JSON.stringify(a.attestations) === JSON.stringify(b.attestations)
  );
}

/** The earliest time one of `checks` changes by time alone, or null. */
function earliest(checks: readonly AttestationCheck[]): string | null {
  const expiries = checks.map((c) => c.expiresAt).filter((e): e is string => e !== null);
  return expiries.length === 0 ? null : expiries.sort()[0]!;
}

/** The decision in one scope's namespaces (null: outside every scope), at `now`. */
export function decideIn(policy: Policy, scope: PolicyScope | null, registry: string, repository: string, facts: ManifestFacts | null, now: Date = new Date()): ScopedDecision {
  const match = matchPolicy(policy, registry, repository, scope);
  const bySignatures = decideBySignatures(match, registry, repository, facts);
  if (match.kind !== 'verify' || match.rule.attestations.length === 0 || facts === null) {
    return bySignatures;
  }
  return withAttestations(bySignatures, checkAttestations(match.rule, facts.attestations ?? [], now, satisfies), match.name);
}

/**
 * The per-requirement results of the rule governing the image in `scope`'s namespaces (null:
 * outside every scope), what `signet explain` shows; empty when that rule requires no attestation.
 */
export function attestationChecks(policy: Policy, registry: string, repository: string, facts: ManifestFacts, now: Date = new Date(), scope: PolicyScope | null = null): AttestationCheck[] {
  const match = matchPolicy(policy, registry, repository, scope);
  return match.kind === 'verify' ? checkAttestations(match.rule, facts.attestations ?? [], now, satisfies) : [];
}

function withAttestations(decision: ScopedDecision, checks: readonly AttestationCheck[], rule: string): ScopedDecision {
  const failed = checks.find((c) => !c.satisfied);
  if (!decision.allowed || failed === undefined) {
    return { ...decision, attestations: checks };
  }
  return {
    ...decision,
    allowed: false,
    reason: failed.reason === 'condition_failed' ? 'attestation_failed' : 'attestation_missing',
    message: `attestation requirement ${failed.requirement} of ${rule} not met: ${failed.message}`,
    signers: [],
    attestations: checks,
  };
}

function decideBySignatures(match: PolicyMatch, registry: string, repository: string, facts: ManifestFacts | null): ScopedDecision {
  const base = { mode: match.mode, signers: [] as Signer[] };
  if (match.kind === 'none') {
    return { ...base, allowed: false, reason: 'not_covered_by_policy', message: `no policy entry covers ${registry}/${repository}`, rule: null };
  }
  if (match.kind === 'allow') {
    return { ...base, allowed: true, reason: 'allowed_without_verification', message: `allowed without verification by ${match.name}`, rule: match.name };
  }
  if (facts === null) {
    // Say how an image gets indexed: the registry's push notifications, or a crawl of what it holds.
    const message = `Signet has not indexed this image yet: point the registry's notifications at Signet (POST /webhooks/<source>) and push it again, or index what the registry holds with: signet backfill ${registry}/${repository}`;
    return { ...base, allowed: false, reason: 'unknown', message, rule: match.name };
  }
  const { rule } = match;
  const verified = facts.signatures.filter((s) => s.outcome === 'verified');
  const signers = new Map<string, Signer>();
  const misses: string[] = [];
  for (const sig of verified) {
    const r = satisfies(rule, sig);
    if ('signer' in r) {
      signers.set(`${r.signer.subject}\n${r.signer.issuer ?? ''}`, r.signer);
    } else {
      misses.push(r.miss);
    }
  }
  const found = [...signers.values()];
  if (found.length >= rule.threshold) {
    return {
      ...base,
      allowed: true,
      reason: 'verified',
      message: `signed by ${found.map((s) => s.subject).join(', ')} (${match.name})`,
      signers: found,
      rule: match.name,
    };
  }
  if (found.length > 0) {
    return {
      ...base,
      allowed: false,
      reason: 'threshold_not_met',
      message: `${found.length} of ${rule.threshold} required signers (${match.name})`,
      rule: match.name,
    };
  }
  if (facts.signatures.length === 0) {
    const withdrawn = facts.withdrawn ?? 0;
    const message = withdrawn === 0 ? 'no signature found' : `no signature found (${withdrawn} withdrawn: deleted or replaced in the registry)`;
    return { ...base, allowed: false, reason: 'unsigned', message, rule: match.name };
  }
  if (verified.length > 0) {
    return {
      ...base,
      allowed: false,
      reason: 'identity_mismatch',
      message: `no signature matches ${match.name}: ${[...new Set(misses)].slice(0, 3).join('; ')}`,
      rule: match.name,
    };
  }
  const status = facts.status === 'unsigned' || facts.status === 'verified' ? 'invalid_signature' : facts.status;
  const why = facts.signatures.find((s) => s.outcome === status)?.reason ?? facts.signatures[0]?.reason ?? null;
  return {
    ...base,
    allowed: false,
    reason: status === 'identity_mismatch' ? 'identity_mismatch' : status,
    message: why ?? status,
    rule: match.name,
  };
}
