import { type ImageReference, parseImageReference } from '../common/domain/image-ref.ts';
import { namespaceIndex } from '../common/policy/namespaces.ts';
import type { Policy } from '../common/policy/policy.ts';
import type { Exemption } from '../common/policy/rollout.ts';
import { type AdmissionReview, denialMessage, type ImageSite, imageSites } from './admission.ts';
import type { AdmissionOutcome, AdmissionResult, AdmittedImage } from './admission-record.ts';
import { BREAK_GLASS_ANNOTATION, type BreakGlassAlerts, breakGlassRequest } from './break-glass.ts';
import type { ImageDecision, ImageDecisions } from './decisions/lookup.ts';
import { publicMessage } from './disclosure.ts';

/** What answering an AdmissionReview reads: decisions (from memory) and the policy's rollout controls. */
export interface AdmitDeps {
  readonly decisions: ImageDecisions;
  readonly policy: () => Policy;
  /** Where honoured break-glass is alerted; null when SIGNET_ALERT_WEBHOOK_URL is unset. */
  readonly alerts: BreakGlassAlerts | null;
}

/** Kubernetes keeps every warning and truncates past 4 KiB in all; each line stays short. */
const MAX_WARNING = 256;
const MAX_WARNINGS = 16;

/** The AdmissionReview `response`, the outcome to record, and each image site with its decision. */
export interface Admitted {
  readonly response: Record<string, unknown>;
  readonly outcome: AdmissionOutcome;
  readonly sites: readonly ImageSite[];
  readonly decisions: readonly ImageDecision[];
}

/** One image's part of the answer. */
interface Judged {
  readonly decision: ImageDecision;
  readonly admitted: AdmittedImage;
  /** Whether this image alone makes the request a denial. */
  readonly denies: boolean;
  readonly warning: string | null;
  readonly by: 'policy' | 'mode' | 'exemption' | 'break_glass';
}

/**
 * The answer to one AdmissionReview and the outcome to record. Each image is decided for the
 * request's namespace; a denial is then admitted by an exemption (matching, unexpired), by
 * break-glass (annotation present, namespace allowed) or by its mode (`warn` with a warning,
 * `audit` silently). Only `enforce` denials nobody admitted refuse the request.
 */
export async function admit(review: AdmissionReview, deps: AdmitDeps, mutate: boolean): Promise<Admitted> {
  const { request } = review;
  const namespace = request.namespace ?? metadataString(request.object, 'namespace');
  const sites = imageSites(request.kind.kind, request.object);
  const decisions = await Promise.all(sites.map((s) => deps.decisions.lookup(s.image, namespace)));
  const index = namespaceIndex(deps.policy());
  const at = new Date();
  const asked = breakGlassRequest(request.object);
  const breakGlass = asked !== null && index.breakGlassAllowed(namespace);
  const judged = decisions.map((d) => judge(d, index.exemptionFor.bind(index), namespace, at.getTime(), breakGlass));
  const user = request.userInfo?.username ?? null;
  const outcome: AdmissionOutcome = {
    at,
    uid: request.uid,
    namespace,
    kind: request.kind.kind,
    name: request.name ?? metadataString(request.object, 'name'),
    operation: request.operation ?? null,
    user,
    result: resultOf(judged),
    breakGlass,
    images: judged.map((j) => j.admitted),
  };
  const warnings = judged.flatMap((j) => (j.warning === null ? [] : [j.warning]));
  if (asked !== null) {
    warnings.unshift(
      breakGlass
        ? `signet: break-glass (${BREAK_GLASS_ANNOTATION}) honoured for ${user ?? 'an unknown user'} in ${namespace}: recorded and alerted`
        : `signet: ${BREAK_GLASS_ANNOTATION} ignored: the policy does not allow break-glass in namespace ${namespace ?? '(none)'}`,
    );
  }
  const brokeGlass = judged.filter((j) => j.by === 'break_glass');
  if (!mutate && brokeGlass.length > 0 && deps.alerts !== null) {
    deps.alerts.alert({
      at,
      namespace,
      kind: outcome.kind,
      name: outcome.name,
      user,
      reason: asked ?? '',
      images: brokeGlass.map((j) => ({ image: j.decision.image, reason: j.decision.reason })),
    });
  }
  const response: Record<string, unknown> = { uid: request.uid, allowed: mutate || outcome.result !== 'denied' };
  if (!mutate) {
    const denied = judged.filter((j) => j.denies).map((j) => j.decision);
    if (denied.length > 0) {
      response.status = { code: 403, reason: 'Forbidden', message: `Signet denied ${denied.length} image(s): ${denialMessage(denied)}` };
    }
    if (warnings.length > 0) {
      response.warnings = boundedWarnings(warnings);
    }
  }
  return { response, outcome, sites, decisions };
}

type FindExemption = (registry: string, repository: string, namespace: string | null, now: number) => Exemption | null;

function judge(d: ImageDecision, exemptionFor: FindExemption, namespace: string | null, now: number, breakGlass: boolean): Judged {
  const base = { image: d.image, digest: d.digest, allowed: d.allowed, rule: d.rule ?? null, mode: d.mode };
  if (d.allowed) {
    return { decision: d, admitted: { ...base, reason: d.reason }, denies: false, warning: null, by: 'policy' };
  }
  const ref = referenceOf(d.image);
  const exemption = ref === null ? null : exemptionFor(ref.registry, ref.repository, namespace, now);
  if (exemption !== null) {
    const warning = `${d.image}: ${d.reason}, admitted by exemption ${exemption.name} until ${new Date(exemption.expires).toISOString()} (${exemption.reason})`;
    return { decision: d, admitted: { ...base, reason: 'exempted', rule: exemption.name }, denies: false, warning, by: 'exemption' };
  }
  if (breakGlass) {
    return { decision: d, admitted: { ...base, reason: 'break_glass' }, denies: false, warning: `${d.image}: ${d.reason}, admitted by break-glass (${d.rule ?? 'policy'})`, by: 'break_glass' };
  }
  switch (d.mode) {
    case 'enforce':
      return { decision: d, admitted: { ...base, reason: d.reason }, denies: true, warning: null, by: 'policy' };
    case 'warn':
      // What the denied user would have read, as a warning: image, reason, rule (never signer identities).
      return { decision: d, admitted: { ...base, reason: d.reason }, denies: false, warning: `${d.image}: ${d.reason} (${d.rule ?? 'policy'}): ${publicMessage(d)}`, by: 'mode' };
    case 'audit':
      return { decision: d, admitted: { ...base, reason: d.reason }, denies: false, warning: null, by: 'mode' };
  }
}

function metadataString(object: Record<string, unknown> | null | undefined, key: 'name' | 'namespace'): string | null {
  const metadata = object?.metadata;
  const value = metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' && value !== '' ? value : null;
}

function referenceOf(image: string): ImageReference | null {
  try {
    return parseImageReference(image);
  } catch {
    return null;
  }
}

/** The request's result: denied over exempted (exemption or break-glass) over warned over allowed. */
function resultOf(judged: readonly Judged[]): AdmissionResult {
  if (judged.some((j) => j.denies)) {
    return 'denied';
  }
  if (judged.some((j) => j.by === 'exemption' || j.by === 'break_glass')) {
    return 'exempted';
  }
  return judged.some((j) => j.by === 'mode' && j.decision.mode === 'warn') ? 'warned' : 'allowed';
}

function boundedWarnings(warnings: readonly string[]): string[] {
  const shown = warnings.slice(0, MAX_WARNINGS).map((w) => (w.length > MAX_WARNING ? `${w.slice(0, MAX_WARNING - 1)}…` : w));
  return warnings.length > MAX_WARNINGS ? [...shown, `signet: and ${warnings.length - MAX_WARNINGS} more`] : shown;
}
