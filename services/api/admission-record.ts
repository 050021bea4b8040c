import type { DecisionMode } from '../common/domain/decision.ts';

// The shape of an admission outcome, shared by the admission handler (which produces it) and the
// admission record (which stores it). Values and names are a contract: records, metrics labels and
// GraphQL filters use exactly these strings.

export type { DecisionMode };
export type AdmissionResult = 'allowed' | 'warned' | 'denied' | 'exempted';

export interface AdmittedImage {
  /** As written in the pod spec. */
  readonly image: string;
  readonly digest: string | null;
  /** What the policy decided, before the mode is applied. */
  readonly allowed: boolean;
  /** The decision reason (e.g. 'verified', 'unsigned'), or 'exempted' / 'break_glass' when one of those admitted it. */
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

export interface AdmissionRecorder {
  /** Never blocks, never throws. */
  record(outcome: AdmissionOutcome): void;
}
