import { namespaceIndex } from '../common/policy/namespaces.ts';
import type { Policy } from '../common/policy/policy.ts';
import { type Judgement, judge, requestResult } from '../core/admission-verdict.ts';
import { BREAK_GLASS_ANNOTATION, breakGlassRequest, type ImageSite, imageSites } from '../common/domain/workload.ts';
import { type AdmissionReview, denialMessage } from './admission.ts';
import type { AdmissionOutcome, AdmittedImage } from './admission-record.ts';
import type { BreakGlassAlerts } from './break-glass.ts';
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
  const judged = decisions.map((d) => ({ decision: d, ...judge({ ...d, publicMessage: publicMessage(d) }, index, namespace, at.getTime(), breakGlass) }));
  const user = request.userInfo?.username ?? null;
  const outcome: AdmissionOutcome = {
    at,
    uid: request.uid,
    namespace,
    kind: request.kind.kind,
    name: request.name ?? metadataString(request.object, 'name'),
    operation: request.operation ?? null,
    user,
    result: requestResult(judged.map((j) => j.verdict)),
    breakGlass,
    images: judged.map(admitted),
  };
  const warnings = judged.flatMap((j) => (j.warning === null ? [] : [j.warning]));
  if (asked !== null) {
    warnings.unshift(
      breakGlass
        ? `signet: break-glass (${BREAK_GLASS_ANNOTATION}) honoured for ${user ?? 'an unknown user'} in ${namespace}: recorded and alerted`
        : `signet: ${BREAK_GLASS_ANNOTATION} ignored: the policy does not allow break-glass in namespace ${namespace ?? '(none)'}`,
    );
  }
  const brokeGlass = judged.filter((j) => j.verdict === 'break_glass');
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
    const denied = judged.filter((j) => j.verdict === 'denied').map((j) => j.decision);
    if (denied.length > 0) {
      response.status = { code: 403, reason: 'Forbidden', message: `Signet denied ${denied.length} image(s): ${denialMessage(denied)}` };
    }
    if (warnings.length > 0) {
      response.warnings = boundedWarnings(warnings);
    }
  }
  return { response, outcome, sites, decisions };
}

/** The image as the admission record keeps it: an exemption or break-glass that admitted it replaces the reason. */
function admitted({ decision: d, verdict, exemption }: { decision: ImageDecision } & Judgement): AdmittedImage {
  const base = { image: d.image, digest: d.digest, allowed: d.allowed, mode: d.mode };
  if (verdict === 'exempted') {
    return { ...base, reason: 'exempted', rule: exemption?.name ?? null };
  }
  return { ...base, reason: verdict === 'break_glass' ? 'break_glass' : d.reason, rule: d.rule ?? null };
}

function metadataString(object: Record<string, unknown> | null | undefined, key: 'name' | 'namespace'): string | null {
  const metadata = object?.metadata;
  const value = metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' && value !== '' ? value : null;
}

function boundedWarnings(warnings: readonly string[]): string[] {
  const shown = warnings.slice(0, MAX_WARNINGS).map((w) => (w.length > MAX_WARNING ? `${w.slice(0, MAX_WARNING - 1)}…` : w));
  return warnings.length > MAX_WARNINGS ? [...shown, `signet: and ${warnings.length - MAX_WARNINGS} more`] : shown;
}
