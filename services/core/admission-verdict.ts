import type { DecisionMode } from '../common/domain/decision.ts';
import { type ImageReference, parseImageReference } from '../common/domain/image-ref.ts';
import type { NamespaceIndex } from '../common/policy/namespaces.ts';
import type { Exemption } from '../common/policy/rollout.ts';

/** What admission makes of one image's decision in a namespace. */
export type ImageVerdict =
  /** The policy allows it. */
  | 'allowed'
  /** Denied in `enforce` mode, and nothing admits it: the request is refused. */
  | 'denied'
  /** Denied in `warn` mode: admitted with a warning. */
  | 'warned'
  /** Denied in `audit` mode: admitted silently. */
  | 'audited'
  /** Denied, admitted by an unexpired exemption (with a warning). */
  | 'exempted'
  /** Denied, admitted by honoured break-glass (with a warning). */
  | 'break_glass';

/** A decision as admission reads it (the API's answers and the CLI's local decisions alike). */
export interface DecidedImage {
  readonly image: string;
  readonly allowed: boolean;
  readonly reason: string;
  readonly rule?: string | null | undefined;
  readonly mode: DecisionMode;
  /** The message a denied user may read (never signer identities). */
  readonly publicMessage: string;
}

export interface Judgement {
  readonly verdict: ImageVerdict;
  /** The Kubernetes warning line for it (image, reason, rule), or null. */
  readonly warning: string | null;
  readonly exemption: Exemption | null;
}

function referenceOf(image: string): ImageReference | null {
  try {
    return parseImageReference(image);
  } catch {
    return null;
  }
}

/**
 * One image's verdict in `namespace` at `now`: an allowed image is allowed; a denied one is
 * admitted by an exemption, else by break-glass (when honoured for the request), else by its
 * mode (`warn` with a warning, `audit` silently); only an `enforce` denial refuses.
 */
export function judge(d: DecidedImage, index: NamespaceIndex, namespace: string | null, now: number, breakGlass: boolean): Judgement {
  if (d.allowed) {
    return { verdict: 'allowed', warning: null, exemption: null };
  }
  const ref = referenceOf(d.image);
  const exemption = ref === null ? null : index.exemptionFor(ref.registry, ref.repository, namespace, now);
  const rule = d.rule ?? 'policy';
  if (exemption !== null) {
    const until = new Date(exemption.expires).toISOString();
    return { verdict: 'exempted', warning: `${d.image}: ${d.reason}, admitted by exemption ${exemption.name} until ${until} (${exemption.reason})`, exemption };
  }
  if (breakGlass) {
    return { verdict: 'break_glass', warning: `${d.image}: ${d.reason}, admitted by break-glass (${rule})`, exemption: null };
  }
  switch (d.mode) {
    case 'enforce':
      return { verdict: 'denied', warning: null, exemption: null };
    case 'warn':
      return { verdict: 'warned', warning: `${d.image}: ${d.reason} (${rule}): ${d.publicMessage}`, exemption: null };
    case 'audit':
      return { verdict: 'audited', warning: null, exemption: null };
  }
}

/** A request's result from its images' verdicts: denied over exempted (exemption or break-glass) over warned over allowed. */
export function requestResult(verdicts: readonly ImageVerdict[]): 'allowed' | 'warned' | 'denied' | 'exempted' {
  if (verdicts.includes('denied')) {
    return 'denied';
  }
  if (verdicts.includes('exempted') || verdicts.includes('break_glass')) {
    return 'exempted';
  }
  return verdicts.includes('warned') ? 'warned' : 'allowed';
}
