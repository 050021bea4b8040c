import type { AttestationCheck, DecisionMode, ManifestFacts, ScopedDecision, SignatureFact } from '../domain/decision.ts';
import type { AttestationRequirement } from './attestations.ts';
import { decideIn, matchPolicy, satisfies } from './evaluate.ts';
import { namespaceIndex } from './namespaces.ts';
import type { Policy, VerificationRule } from './policy.ts';

/** One requirement of the rule that applies, and whether the image meets it. */
export interface RequirementResult {
  /** What kind of requirement: `signature` (k-of-n signers) or `attestation` (one of the rule's `attestations`). */
  readonly kind: string;
  /** The requirement in words, e.g. `1 signer: identity alice@example.com, issuer https://…`. */
  readonly description: string;
  readonly satisfied: boolean;
  /** Why (not): who satisfied it, or what was missing. */
  readonly detail: string;
}

/** One stored signature or attestation of the image, and what the rule makes of it. */
export interface EvidenceResult {
  readonly outcome: SignatureFact['outcome'];
  /** The signer (SAN or key fingerprint), when verification got that far. */
  readonly subject: string | null;
  readonly issuer: string | null;
  /** Whether it counts towards the rule. */
  readonly counts: boolean;
  readonly why: string;
}

/** Why an image is (not) admitted in a namespace, as `signet explain` and GraphQL `explain` show it. */
export interface Explanation {
  readonly registry: string;
  readonly repository: string;
  readonly namespace: string | null;
  /** The policy scope the namespace is in; null outside every scope. */
  readonly scope: string | null;
  /** The policy entry that applies, or null when none covers the image. */
  readonly rule: string | null;
  readonly mode: DecisionMode;
  readonly decision: ScopedDecision;
  /** Whether Signet has indexed the image (false: no evidence to explain). */
  readonly indexed: boolean;
  readonly requirements: readonly RequirementResult[];
  /** Each attestation requirement of the rule and how it fared (the same results the decision stores); empty when it has none. */
  readonly attestations: readonly AttestationCheck[];
  readonly evidence: readonly EvidenceResult[];
  /** The exemption that admits the image there now, if any. */
  readonly exemption: { readonly name: string; readonly reason: string; readonly expires: string } | null;
  /** Whether the break-glass annotation is honoured in the namespace. */
  readonly breakGlassAllowed: boolean;
  readonly policyVersion: string;
}

function describeRule(rule: VerificationRule): string {
  const who =
    rule.kind === 'key'
      ? `key ${rule.keys.map((k) => k.fingerprint).join(' or ')}${rule.ignoreTlog ? '' : ' with a Rekor entry'}`
      : `identity ${'exact' in rule.identity ? rule.identity.exact : `/${rule.identity.source}/`}, issuer ${'exact' in rule.issuer ? rule.issuer.exact : `/${rule.issuer.source}/`}`;
  const annotations = Object.entries(rule.annotations).map(([k, v]) => `${k}=${v}`);
  return `${rule.threshold} signer${rule.threshold === 1 ? '' : 's'}: ${who}${annotations.length > 0 ? `, annotations ${annotations.join(', ')}` : ''}`;
}

function describeAttestation(req: AttestationRequirement): string {
  const conditions = req.conditions.map((c) => c.source.replace(/\s+/g, ' ').trim());
  const signer = describeRule(req.signer).replace(/^1 signer: /, 'signed by ');
  return `attestation ${req.name}: ${req.predicateTypes.join(' or ')}, ${signer}${conditions.length > 0 ? `, where ${conditions.join(' && ')}` : ''}`;
}

/** The rule's attestation requirements beside their results (`checks`, from the decision, are in the same order). */
function attestationRequirements(rule: VerificationRule, checks: readonly AttestationCheck[], facts: ManifestFacts | null): RequirementResult[] {
  return rule.attestations.map((req, i) => {
    const check = checks[i];
    const description = describeAttestation(req);
    if (check === undefined) {
      // Only an image Signet has not indexed has no results: the decision checks every requirement otherwise.
      return { kind: 'attestation', description, satisfied: false, detail: facts === null ? 'the image is not indexed: no attestation known' : 'not checked' };
    }
    const detail = check.expiresAt === null ? check.message : `${check.message} (until ${check.expiresAt}, when time alone changes the answer)`;
    return { kind: 'attestation', description, satisfied: check.satisfied, detail };
  });
}

function evidenceOf(rule: VerificationRule | null, sig: SignatureFact): EvidenceResult {
  const base = { outcome: sig.outcome, subject: sig.identity?.subject ?? sig.keyFingerprint, issuer: sig.identity?.issuer ?? null };
  if (sig.outcome !== 'verified') {
    return { ...base, counts: false, why: `not verified: ${sig.outcome}${sig.reason === null ? '' : ` (${sig.reason})`}` };
  }
  if (rule === null) {
    return { ...base, counts: false, why: 'verified, but the rule that applies asks for no signature' };
  }
  const r = satisfies(rule, sig);
  return 'signer' in r ? { ...base, counts: true, why: `verified and matches the rule as ${r.signer.subject}` } : { ...base, counts: false, why: `verified, but ${r.miss}` };
}

/**
 * Explains the decision for `registry/repository` (facts null: not indexed) in `namespace`: the
 * rule that applies and its mode, each requirement and whether it is met, each signature and why
 * it counts or not, and the exemption or break-glass that would admit it there at `now`. Pure;
 * the same functions as the decision itself, so the explanation cannot disagree with it.
 */
export function explain(policy: Policy, registry: string, repository: string, facts: ManifestFacts | null, namespace: string | null, now: number): Explanation {
  const index = namespaceIndex(policy);
  const scope = index.scopeOf(namespace);
  const match = matchPolicy(policy, registry, repository, scope);
  const decision = decideIn(policy, scope, registry, repository, facts, new Date(now));
  const rule = match.kind === 'verify' ? match.rule : null;
  const evidence = (facts?.signatures ?? []).map((s) => evidenceOf(rule, s));
  const requirements: RequirementResult[] = [];
  if (rule !== null) {
    const counted = evidence.filter((e) => e.counts).map((e) => e.subject);
    const signers = [...new Set(counted)];
    requirements.push({
      kind: 'signature',
      description: describeRule(rule),
      satisfied: signers.length >= rule.threshold,
      detail: facts === null ? 'the image is not indexed: no signature known' : signers.length > 0 ? `${signers.length} of ${rule.threshold}: ${signers.join(', ')}` : decision.message,
    });
    requirements.push(...attestationRequirements(rule, decision.attestations ?? [], facts));
  }
  const exemption = index.exemptionFor(registry, repository, namespace, now);
  return {
    registry,
    repository,
    namespace,
    scope: scope?.name ?? null,
    rule: match.kind === 'none' ? null : match.name,
    mode: decision.mode,
    decision,
    indexed: facts !== null,
    requirements,
    attestations: decision.attestations ?? [],
    evidence,
    exemption: exemption === null ? null : { name: exemption.name, reason: exemption.reason, expires: new Date(exemption.expires).toISOString() },
    breakGlassAllowed: index.breakGlassAllowed(namespace),
    policyVersion: policy.version,
  };
}
