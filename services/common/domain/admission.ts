import type { DecisionMode } from './decision.ts';

export type { DecisionMode };

/**
 * What Signet answered to one admission request, as the admission record keeps it. The string
 * values are shared with the decision modes (enforce, warn, audit), exemptions and break-glass.
 */
export type AdmissionResult = 'allowed' | 'warned' | 'denied' | 'exempted';

export const ADMISSION_RESULTS: readonly AdmissionResult[] = ['allowed', 'warned', 'denied', 'exempted'];

export interface AdmittedImage {
  /** As written in the pod spec. */
  readonly image: string;
  readonly digest: string | null;
  /** What the policy decided, before the mode is applied. */
  readonly allowed: boolean;
  /** The decision reason (e.g. 'verified', 'unsigned', 'exempted', 'break_glass'). */
  readonly reason: string;
  readonly rule: string | null;
  readonly mode: DecisionMode;
}

export interface AdmissionOutcome {
  readonly at: Date;
  readonly uid: string;
  readonly namespace: string | null;
  /** `request.kind.kind`. */
  readonly kind: string;
  /** `request.name`, else `object.metadata.name`. */
  readonly name: string | null;
  readonly operation: string | null;
  /** `request.userInfo.username`. */
  readonly user: string | null;
  /** Of the request as a whole. */
  readonly result: AdmissionResult;
  readonly breakGlass: boolean;
  readonly images: readonly AdmittedImage[];
}

/**
 * The reason that decided a request: the first image whose own decision produced the result (a
 * denied image for `denied`, and so on), else the first image's, else `no_images`.
 */
export function decidingReason(outcome: Pick<AdmissionOutcome, 'result' | 'images'>): string {
  const telling = outcome.result === 'allowed' ? outcome.images.find((i) => i.allowed) : outcome.images.find((i) => !i.allowed);
  return (telling ?? outcome.images[0])?.reason ?? 'no_images';
}
