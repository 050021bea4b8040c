import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import picomatch from 'picomatch';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { normalizeRegistry } from '../domain/image-ref.ts';
import { type AttestationRequirement, attestationSchema, parseAttestations } from './attestations.ts';
import { BreakGlassSchema, type DecisionMode, type Exemption, ExemptionSchema, ModeSchema, type PolicyScope, ScopeSchema, toRollout } from './rollout.ts';

export type { DecisionMode };
import { compileRe2, type Matcher } from './matcher.ts';

export { matches, type Matcher } from './matcher.ts';

export interface GithubClaims {
  readonly repository?: string;
  readonly ref?: string;
  readonly sha?: string;
  readonly trigger?: string;
  readonly name?: string;
}

interface RuleBase {
  /** The image-path glob as written, e.g. `team-a/*`. */
  readonly pattern: string;
  /** This rule's own mode; null takes its scope's, then the policy's. */
  readonly mode: DecisionMode | null;
  /** Signature annotations (the payload's `optional` section) every counted signature must carry. */
  readonly annotations: Readonly<Record<string, string>>;
  /** How many distinct signers must match (k-of-n). */
  readonly threshold: number;
  /** Attestations the image must also carry (`attestations:`), checked after its signatures. */
  readonly attestations: readonly AttestationRequirement[];
  /**
   * `sha256:<hex>` of the rule's properties as written (canonical JSON, the pattern aside): two
   * rules with the same pattern and digest decide every image alike. What `diff.ts` compares.
   */
  readonly propertiesDigest: string;
}

export interface KeylessRule extends RuleBase {
  readonly kind: 'keyless';
  readonly identity: Matcher;
  readonly issuer: Matcher;
  readonly github: GithubClaims;
}

export interface KeyRule extends RuleBase {
  readonly kind: 'key';
  readonly keys: readonly { readonly fingerprint: string; readonly key: KeyObject }[];
  /** Accept signatures without a Rekor entry (cosign `--insecure-ignore-tlog`). */
  readonly ignoreTlog: boolean;
}

export type VerificationRule = KeylessRule | KeyRule;

/** The rules of one place: the whole cluster (the policy's top level) or one scope. */
export interface PolicyRules {
  /** Registry host → rules, in the order they were written. */
  readonly withVerification: ReadonlyMap<string, readonly VerificationRule[]>;
  /** Registry host → image-path globs allowed without any signature. */
  readonly withoutVerification: ReadonlyMap<string, readonly string[]>;
}

export interface Policy extends PolicyRules {
  /** `sha256:<hex>` of the policy's canonical JSON: recorded on every decision. */
  readonly version: string;
  /** The default mode (`enforce` when the policy names none, so older policies mean what they meant). */
  readonly mode: DecisionMode;
  /** Namespace scopes (see `rollout.ts`), in name order. */
  readonly scopes: readonly PolicyScope[];
  /** Dated exceptions, applied at admission. */
  readonly exemptions: readonly Exemption[];
  /** Namespace globs where the break-glass annotation is honoured; empty honours it nowhere. */
  readonly breakGlassNamespaces: readonly string[];
}

export class PolicyConfigError extends Error {
  override readonly name = 'PolicyConfigError';
  readonly issues: readonly string[];
  /**
   * @param located the same issues as `file:line:column: path: message` lines, when the text was at
   * hand to locate them (see `check.ts`); the message shows those instead.
   */
  constructor(source: string, issues: readonly string[], located?: readonly string[]) {
    super(`invalid policy ${source}:\n${(located ?? issues).map((i) => `  ${located === undefined ? '- ' : ''}${i}`).join('\n')}`);
    this.issues = issues;
  }
}

const pem = z.string().regex(/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/, 'expected a PEM public key');

/** The properties that name who may sign: a rule's, and an attestation requirement's. */
const SignerFields = {
  key: z.union([pem, z.array(pem).min(1)]).optional(),
  'certificate-identity': z.string().min(1).optional(),
  'certificate-identity-regexp': z.string().min(1).optional(),
  'certificate-oidc-issuer': z.url().optional(),
  'certificate-oidc-issuer-regexp': z.string().min(1).optional(),
  'certificate-github-workflow-repository': z.string().min(1).optional(),
  'certificate-github-workflow-ref': z.string().min(1).optional(),
  'certificate-github-workflow-sha': z.string().min(1).optional(),
  'certificate-github-workflow-trigger': z.string().min(1).optional(),
  'certificate-github-workflow-name': z.string().min(1).optional(),
  'insecure-ignore-tlog': z.boolean().optional(),
  'insecure-ignore-sct': z.boolean().optional(),
};

const RuleObject = z.strictObject({
  ...SignerFields,
  mode: ModeSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  threshold: z.number().int().min(1).max(100).optional(),
  attestations: z.array(attestationSchema(SignerFields)).min(1).max(32).optional(),
});
const RuleSchema = RuleObject.refine((r) => Object.keys(r).length > 0, 'a rule needs at least one property');

// Rules are checked one by one in toRules (RuleSchema), so that a misspelt key in one rule does not
// hide a bad regular expression in another: every problem is reported at once.
const Sections = {
  allow_with_verification: z.record(z.string().min(1), z.record(z.string().min(1), z.unknown())).optional(),
  allow_without_verification: z.record(z.string().min(1), z.array(z.string().min(1)).min(1)).optional(),
};

// Unknown top-level keys are reported by `unknownKeys` (with a "did you mean"), not by the schema,
// so the rules are still checked when one is misspelt.
const TopLevel = {
  ...Sections,
  mode: ModeSchema.optional(),
  scopes: z.record(z.string().min(1), ScopeSchema(Sections)).optional(),
  exemptions: z.array(ExemptionSchema).optional(),
  break_glass: BreakGlassSchema.optional(),
};
const PolicySchema = z.object(TopLevel);
const TOP_KEYS = Object.keys(TopLevel);
const RULE_KEYS = Object.keys(RuleObject.shape);

type RawRule = z.infer<typeof RuleSchema>;
type RawSections = { readonly [K in keyof typeof Sections]?: z.infer<(typeof Sections)[K]> };

/**
 * Parses a policy file (YAML or JSON — JSON is YAML) in the Styra DAS cosign `verification_config`
 * format with Signet's extensions. Every problem is reported with its path; a policy that could
 * silently accept any identity is an error.
 */
export function parsePolicy(text: string, source = 'policy'): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    throw new PolicyConfigError(source, [`not YAML or JSON: ${(err as Error).message}`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new PolicyConfigError(source, ['(root): expected object: a mapping with allow_with_verification and/or allow_without_verification']);
  }
  const issues = Object.keys(raw).length === 0 ? ['(root): the policy is empty'] : unknownKeys('', Object.keys(raw), TOP_KEYS);
  const parsed = PolicySchema.safeParse(raw);
  if (!parsed.success) {
    throw new PolicyConfigError(source, [...issues, ...schemaIssues(parsed.error, '', [])]);
  }
  const rules = toRules(parsed.data, '', issues);
  const rollout = toRollout(parsed.data, (sections, at) => toRules(sections, at, issues), issues);
  if (issues.length > 0) {
    throw new PolicyConfigError(source, issues);
  }
  return {
    version: `sha256:${createHash('sha256').update(canonicalJson(parsed.data)).digest('hex')}`,
    ...rules,
    ...rollout,
  };
}

/**
 * Every `allow_with_verification` rule of the policy, the top-level ones and each scope's, with its
 * registry and the prefix of its name (`scopes.<name>.` in a scope, else empty).
 */
export function verificationRules(policy: Policy): { readonly host: string; readonly prefix: string; readonly rule: VerificationRule }[] {
  const places: [PolicyRules, string][] = [[policy, ''], ...policy.scopes.map((s): [PolicyRules, string] => [s, `scopes.${s.name}.`])];
  return places.flatMap(([rules, prefix]) => [...rules.withVerification.entries()].flatMap(([host, list]) => list.map((rule) => ({ host, prefix, rule }))));
}

function schemaIssues(error: z.ZodError, prefix: string, known: readonly string[]): string[] {
  // An unknown key leaves the rule looking empty to its refinement: say only what is wrong.
  const unknown = error.issues.some((i) => i.code === 'unrecognized_keys');
  return error.issues.flatMap((i) => {
    if (unknown && i.code === 'custom') {
      return [];
    }
    const at = [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.');
    return i.code === 'unrecognized_keys' ? unknownKeys(at, i.keys, known) : [`${at || '(root)'}: ${i.message}`];
  });
}

function unknownKeys(at: string, keys: readonly string[], known: readonly string[]): string[] {
  return keys
    .filter((k) => !known.includes(k))
    .map((k) => {
      const guess = closest(k, known);
      return `${at === '' ? k : `${at}.${k}`}: unknown key${guess === null ? '' : `; did you mean ${JSON.stringify(guess)}?`}`;
    });
}

/**
 * The known key nearest to a misspelt one (Levenshtein distance at most a third of its length), or
 * null. Written out rather than a dependency: a dozen lines, run only on bad policies.
 */
export function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    let previous = Array.from({ length: candidate.length + 1 }, (_, j) => j);
    for (let i = 1; i <= key.length; i++) {
      const row = [i];
      for (let j = 1; j <= candidate.length; j++) {
        row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (key[i - 1] === candidate[j - 1] ? 0 : 1));
      }
      previous = row;
    }
    if (previous[candidate.length]! < bestDistance) {
      bestDistance = previous[candidate.length]!;
      best = candidate;
    }
  }
  return best;
}

/** The two sections of the top level or of a scope; `at` prefixes issue paths (`scopes.x.`). */
function toRules(sections: RawSections, at: string, issues: string[]): PolicyRules {
  const withVerification = new Map<string, VerificationRule[]>();
  for (const [host, paths] of Object.entries(sections.allow_with_verification ?? {})) {
    const rules: VerificationRule[] = [];
    for (const [pattern, raw] of Object.entries(paths)) {
      const ruleAt = `${at}allow_with_verification.${host}.${pattern}`;
      checkPattern(pattern, ruleAt, issues);
      const shape = RuleSchema.safeParse(raw);
      if (!shape.success) {
        issues.push(...schemaIssues(shape.error, ruleAt, RULE_KEYS));
        continue;
      }
      const rule = toRule(pattern, shape.data, ruleAt, issues);
      if (rule !== null) {
        const toSigner = (props: Record<string, unknown>, where: string) => toRule(pattern, props, where, issues);
        rules.push({ ...rule, attestations: parseAttestations(shape.data.attestations, rule, ruleAt, issues, toSigner) });
      }
    }
    mergeHost(withVerification, host, rules, issues, `${at}allow_with_verification`);
  }
  const withoutVerification = new Map<string, string[]>();
  for (const [host, patterns] of Object.entries(sections.allow_without_verification ?? {})) {
    patterns.forEach((p, i) => checkPattern(p, `${at}allow_without_verification.${host}.${i}`, issues));
    mergeHost(withoutVerification, host, patterns, issues, `${at}allow_without_verification`);
  }
  return { withVerification, withoutVerification };
}

function mergeHost<T>(map: Map<string, T[]>, host: string, items: T[], issues: string[], section: string): void {
  const normalized = normalizeRegistry(host);
  if (map.has(normalized)) {
    issues.push(`${section}.${host}: the same registry as another key (${normalized})`);
    return;
  }
  map.set(normalized, items);
}

function checkPattern(pattern: string, at: string, issues: string[]): void {
  if (!/^[a-z0-9._\-/*?[\]{},!]+$/.test(pattern) || pattern.startsWith('/') || pattern.endsWith('/')) {
    issues.push(`${at}: ${JSON.stringify(pattern)} is not an image-path glob (lower-case path, * ? ** [..] {..})`);
  }
}

/**
 * Unrelated identities of every shape Fulcio issues: a regexp that accepts all of them accepts
 * anyone (`.*`, `.+@.+`, `https://.*|.*@.*`) and is refused.
 */
export const ANY_IDENTITY_PROBES = [
  'attacker@evil.example',
  'https://github.com/evil-org/evil-repo/.github/workflows/release.yml@refs/heads/main',
  'https://gitlab.com/evil-group/evil-project//.gitlab-ci.yml@refs/heads/main',
  'spiffe://evil.example/ns/default/sa/default',
] as const;

function matcher(exact: string | undefined, regexp: string | undefined, what: string, at: string, issues: string[]): Matcher | null {
  if (exact !== undefined && regexp !== undefined) {
    issues.push(`${at}: give certificate-${what} or certificate-${what}-regexp, not both`);
    return null;
  }
  if (exact !== undefined) {
    return { exact };
  }
  if (regexp !== undefined) {
    try {
      // Go RE2 syntax, matched anywhere in the value, as cosign does (see matcher.ts).
      return { regexp: compileRe2(regexp), source: regexp };
    } catch (err) {
      issues.push(`${at}.certificate-${what}-regexp: not an RE2 regular expression: ${(err as Error).message}`);
      return null;
    }
  }
  issues.push(
    `${at}: a keyless rule must name certificate-${what} or certificate-${what}-regexp (without it any ${what} would be accepted)`,
  );
  return null;
}

function toRule(pattern: string, r: RawRule, at: string, issues: string[]): VerificationRule | null {
  const common = {
    pattern,
    mode: r.mode ?? null,
    annotations: r.annotations ?? {},
    threshold: r.threshold ?? 1,
    attestations: [],
    propertiesDigest: `sha256:${createHash('sha256').update(canonicalJson(r)).digest('hex')}`,
  };
  // insecure-ignore-sct is accepted on key rules (Styra's sample has it) and means nothing there.
  const keyless = Object.keys(r).filter((k) => k.startsWith('certificate-'));
  if (r.key !== undefined) {
    if (keyless.length > 0) {
      issues.push(`${at}: a rule is either key-based (key) or keyless (certificate-*), not both: ${keyless.join(', ')}`);
      return null;
    }
    const keys = [];
    for (const [i, text] of (Array.isArray(r.key) ? r.key : [r.key]).entries()) {
      try {
        const key = createPublicKey(text);
        const fingerprint = `sha256:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')}`;
        keys.push({ fingerprint, key });
      } catch (err) {
        issues.push(`${at}.key${Array.isArray(r.key) ? `.${i}` : ''}: not a usable public key: ${(err as Error).message}`);
      }
    }
    if (common.threshold > keys.length) {
      issues.push(`${at}.threshold: ${common.threshold} signers can never be met by ${keys.length} key(s)`);
    }
    return { kind: 'key', ...common, keys, ignoreTlog: r['insecure-ignore-tlog'] ?? false };
  }
  if (r['insecure-ignore-sct'] === true) {
    // Refused rather than silently ignored: keyless verification always checks the certificate's
    // embedded SCT against the trusted root's CT logs.
    issues.push(`${at}.insecure-ignore-sct: not supported — Signet always requires a valid SCT on keyless certificates`);
  }
  if (r['insecure-ignore-tlog'] === true) {
    issues.push(`${at}.insecure-ignore-tlog: keyless signatures always need the transparency log (their certificate expires in minutes)`);
  }
  const identity = matcher(r['certificate-identity'], r['certificate-identity-regexp'], 'identity', at, issues);
  if (identity !== null && 'regexp' in identity && ANY_IDENTITY_PROBES.every((probe) => identity.regexp.test(probe))) {
    issues.push(
      `${at}.certificate-identity-regexp: ${JSON.stringify(identity.source)} accepts any identity; name who may sign (an email domain, a GitHub organisation or repository)`,
    );
    return null;
  }
  const issuer = matcher(r['certificate-oidc-issuer'], r['certificate-oidc-issuer-regexp'], 'oidc-issuer', at, issues);
  if (identity === null || issuer === null) {
    return null;
  }
  return {
    kind: 'keyless',
    ...common,
    identity,
    issuer,
    github: {
      repository: r['certificate-github-workflow-repository'],
      ref: r['certificate-github-workflow-ref'],
      sha: r['certificate-github-workflow-sha'],
      trigger: r['certificate-github-workflow-trigger'],
      name: r['certificate-github-workflow-name'],
    },
  };
}

/** JSON with sorted keys, so the policy version does not depend on key order or formatting. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** picomatch with `*` not crossing `/` and `**` crossing it, compiled once per pattern. */
const globCache = new Map<string, (path: string) => boolean>();
export function globMatches(pattern: string, path: string): boolean {
  let fn = globCache.get(pattern);
  if (fn === undefined) {
    fn = picomatch(pattern, { dot: true, nonegate: true });
    globCache.set(pattern, fn);
  }
  return fn(path);
}
