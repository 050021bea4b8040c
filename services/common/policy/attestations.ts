import { z } from 'zod';
import { predicateTypeUri } from '../domain/attestation.ts';
import type { AttestationCheck, AttestationFact, SignatureFact, Signer } from '../domain/decision.ts';
import { compileCondition, type CompiledCondition, type ConditionVariables } from './cel.ts';
import type { Policy, VerificationRule } from './policy.ts';

// Attestation requirements of a policy rule (`attestations:`): each names predicate types, who must
// have signed the attestation, and optional CEL conditions on its statement. Checked when an image
// is decided, from the statements stored in the ledger: no registry call, never at admission.

/** One requirement of a rule, parsed. */
export interface AttestationRequirement {
  /** Its `name`, or `attestations.<index>`. */
  readonly name: string;
  /** Accepted predicate type URIs (shorthands resolved): any one of them will do. */
  readonly predicateTypes: readonly string[];
  /** Who must have signed it: its own key or certificate matchers, else the rule's. */
  readonly signer: VerificationRule;
  /** Every condition must hold for one and the same attestation. */
  readonly conditions: readonly CompiledCondition[];
}

const REQUIREMENT_KEYS = ['name', 'predicate-type', 'condition'] as const;

/** The zod schema of one requirement, given the signer properties a rule accepts. */
export function attestationSchema<S extends z.core.$ZodLooseShape>(signerFields: S) {
  return z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a name is 1–63 letters, digits, . _ -').optional(),
    'predicate-type': z.union([z.string().min(1).max(1024), z.array(z.string().min(1).max(1024)).min(1).max(16)]),
    condition: z.union([z.string().min(1).max(4096), z.array(z.string().min(1).max(4096)).min(1).max(16)]).optional(),
    ...signerFields,
  });
}

type RawRequirement = { readonly name?: string; readonly 'predicate-type': string | string[]; readonly condition?: string | string[] } & Record<string, unknown>;

/**
 * Parses a rule's `attestations` list. `toSigner` builds a signer matcher from the signer
 * properties of a requirement (the same parser as a rule's); a requirement that names none is
 * signed by whoever the rule accepts.
 */
export function parseAttestations(
  raw: readonly RawRequirement[] | undefined,
  rule: VerificationRule,
  at: string,
  issues: string[],
  toSigner: (props: Record<string, unknown>, at: string) => VerificationRule | null,
): AttestationRequirement[] {
  const out: AttestationRequirement[] = [];
  const names = new Set<string>();
  for (const [i, r] of (raw ?? []).entries()) {
    const where = `${at}.attestations.${i}`;
    const name = r.name ?? `attestations.${i}`;
    if (names.has(name)) {
      issues.push(`${where}.name: ${JSON.stringify(name)} names another requirement of this rule too`);
    }
    names.add(name);
    const signerProps = Object.fromEntries(Object.entries(r).filter(([k]) => !(REQUIREMENT_KEYS as readonly string[]).includes(k)));
    const signer = Object.keys(signerProps).length === 0 ? { ...rule, annotations: {}, threshold: 1, attestations: [] } : toSigner(signerProps, where);
    const sources = r.condition === undefined ? [] : Array.isArray(r.condition) ? r.condition : [r.condition];
    const conditions: CompiledCondition[] = [];
    sources.forEach((source, j) => {
      const compiled = compileCondition(source);
      if ('problems' in compiled) {
        const path = Array.isArray(r.condition) ? `${where}.condition.${j}` : `${where}.condition`;
        issues.push(...compiled.problems.map((p) => `${path}: CEL: ${p}`));
      } else {
        conditions.push(compiled);
      }
    });
    if (signer !== null) {
      const types = Array.isArray(r['predicate-type']) ? r['predicate-type'] : [r['predicate-type']];
      out.push({ name, predicateTypes: [...new Set(types.map(predicateTypeUri))], signer, conditions });
    }
  }
  return out;
}

/** Every predicate type any rule of the policy requires (what deciding must load). */
export function requiredPredicateTypes(policy: Policy): string[] {
  const types = new Set<string>();
  // Scopes' rules too: a scoped decision checks its own rule's requirements.
  for (const rules of [policy, ...policy.scopes]) {
    for (const list of rules.withVerification.values()) {
      list.forEach((rule) => rule.attestations.forEach((req) => req.predicateTypes.forEach((t) => types.add(t))));
    }
  }
  return [...types].sort();
}

/** How far ahead an answer that depends on `now` is followed (about 388 days: 2^25 s). */
const HORIZON_STEPS = 25;

type Answer = boolean | { readonly error: string };
const key = (a: Answer) => (typeof a === 'boolean' ? String(a) : 'error');

/**
 * The first moment after `now` at which `condition` answers otherwise, to the millisecond: probes at
 * now + 1 s, 2 s, 4 s, … then bisects between the last probe that agreed and the first that did
 * not. A condition that keeps its answer over the horizon is looked at again at its end.
 */
export function nextChange(condition: CompiledCondition, vars: ConditionVariables, now: Date): Date {
  const first = key(condition.evaluate(vars, now));
  let lo = now.getTime();
  for (let step = 0; step <= HORIZON_STEPS; step++) {
    const probe = now.getTime() + 2 ** step * 1000;
    if (key(condition.evaluate(vars, new Date(probe))) === first) {
      lo = probe;
      continue;
    }
    let hi = probe;
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (key(condition.evaluate(vars, new Date(mid))) === first) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return new Date(hi);
  }
  return new Date(lo);
}

function asSignatureFact(a: AttestationFact): SignatureFact {
  return { ...a, annotations: null };
}

function variables(a: AttestationFact, signer: Signer): ConditionVariables {
  const s = a.statement ?? {};
  return { statement: s, predicate: s.predicate, predicateType: a.predicateType, subject: s.subject, signer, signedAt: a.signedAt };
}

type Satisfies = (rule: VerificationRule, sig: SignatureFact) => { signer: Signer } | { miss: string };

function earliest(dates: readonly (Date | null)[]): Date | null {
  const known = dates.filter((d): d is Date => d !== null);
  return known.length === 0 ? null : new Date(Math.min(...known.map((d) => d.getTime())));
}

/** One attestation by the required signer against every condition: the first that fails, and when the answer may change. */
function checkConditions(req: AttestationRequirement, a: AttestationFact, signer: Signer, now: Date): { failed: string | null; expiresAt: Date | null } {
  const vars = variables(a, signer);
  const changes: (Date | null)[] = [];
  let failed: string | null = null;
  for (const c of req.conditions) {
    const answer = c.evaluate(vars, now);
    changes.push(c.usesNow ? nextChange(c, vars, now) : null);
    if (answer !== true && failed === null) {
      failed = answer === false ? `${c.source} is false` : `${c.source} could not be evaluated: ${answer.error}`;
    }
  }
  return { failed, expiresAt: earliest(changes) };
}

function result(req: AttestationRequirement, reason: AttestationCheck['reason'], message: string, expiresAt: Date | null = null): AttestationCheck {
  return { requirement: req.name, predicateTypes: req.predicateTypes, satisfied: reason === 'satisfied', reason, message, expiresAt: expiresAt?.toISOString() ?? null };
}

/** Checks one requirement against an image's stored attestations, at `now`. */
export function checkRequirement(req: AttestationRequirement, attestations: readonly AttestationFact[], now: Date, satisfies: Satisfies): AttestationCheck {
  const found = attestations.filter((a) => req.predicateTypes.includes(a.predicateType));
  if (found.length === 0) {
    return result(req, 'missing', `no ${req.predicateTypes.join(' or ')} attestation`);
  }
  const verified = found.filter((a) => a.outcome === 'verified');
  if (verified.length === 0) {
    return result(req, 'unverified', `${found.length} ${req.predicateTypes.join(' or ')} attestation(s), none verified: ${found[0]!.reason ?? found[0]!.outcome}`);
  }
  const misses: string[] = [];
  const signed: { a: AttestationFact; signer: Signer }[] = [];
  for (const a of verified) {
    const r = satisfies(req.signer, asSignatureFact(a));
    if ('signer' in r) {
      signed.push({ a, signer: r.signer });
    } else {
      misses.push(r.miss);
    }
  }
  if (signed.length === 0) {
    return result(req, 'signer_mismatch', `no ${req.predicateTypes.join(' or ')} attestation by the required signer: ${[...new Set(misses)].slice(0, 3).join('; ')}`);
  }
  const checks = signed.map(({ a, signer }) => ({ a, signer, ...checkConditions(req, a, signer, now) }));
  const expiresAt = earliest(checks.map((c) => c.expiresAt));
  const ok = checks.find((c) => c.failed === null);
  if (ok !== undefined) {
    return result(req, 'satisfied', `${ok.a.predicateType} signed by ${ok.signer.subject} at ${ok.a.signedAt.toISOString()}`, expiresAt);
  }
  return result(req, 'condition_failed', `${checks.length} ${req.predicateTypes.join(' or ')} attestation(s) by the required signer, none meets the conditions: ${checks[0]!.failed}`, expiresAt);
}

/** Checks every requirement of `rule` (an empty list when it has none). */
export function checkAttestations(rule: VerificationRule, attestations: readonly AttestationFact[], now: Date, satisfies: Satisfies): AttestationCheck[] {
  return rule.attestations.map((req) => checkRequirement(req, attestations, now, satisfies));
}
