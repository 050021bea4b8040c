import { z } from 'zod';
import { formatImageReference, parseImageReference } from '../common/domain/image-ref.ts';
import { publicMessage } from './disclosure.ts';
import type { ImageDecision } from './decisions/lookup.ts';

export const AdmissionReview = z.looseObject({
  apiVersion: z.enum(['admission.k8s.io/v1', 'admission.k8s.io/v1beta1']),
  kind: z.literal('AdmissionReview'),
  request: z.looseObject({
    uid: z.string().min(1),
    kind: z.looseObject({ kind: z.string() }),
    operation: z.string().optional(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    userInfo: z.looseObject({ username: z.string().optional() }).optional(),
    object: z.record(z.string(), z.unknown()).nullable().optional(),
  }),
});
export type AdmissionReview = z.infer<typeof AdmissionReview>;

/** The denial message names each offending image, why, and the rule; never signer identities (kubectl shows it to whoever applied). */
export function denialMessage(decisions: readonly ImageDecision[]): string {
  return decisions
    .filter((d) => !d.allowed)
    .map((d) => `${d.image}: ${d.reason} (${publicMessage(d)})`)
    .join('; ');
}

/** `registry/repo@digest` for an image Signet allowed and knows the digest of; null otherwise. */
export function pinnedReference(d: ImageDecision): string | null {
  if (!d.allowed || d.digest === null || d.reason === 'invalid_reference') {
    return null;
  }
  const ref = parseImageReference(d.image);
  return formatImageReference({ ...ref, tag: null, digest: d.digest });
}
