import type { Kysely } from 'kysely';
import * as decisions from '../common/db/queries/decisions.ts';
import * as images from '../common/db/queries/images.ts';
import * as tags from '../common/db/queries/tags.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { Digest } from '../common/domain/digest.ts';
import type { ImageReference } from '../common/domain/image-ref.ts';
import { requiredPredicateTypes } from '../common/policy/attestations.ts';
import { type Explanation, explain } from '../common/policy/explain.ts';
import type { Policy } from '../common/policy/policy.ts';

/** An explanation with the image it is about: the reference asked and the digest it names in the ledger. */
export interface ImageExplanation extends Explanation {
  readonly image: string;
  readonly digest: Digest | null;
}

/**
 * Explains the decision for an image reference in a namespace, from the ledger's stored material
 * (a tag is resolved as the ledger last saw it; no registry is contacted), with the attestations
 * the policy's requirements name.
 */
export async function explainImage(db: Kysely<DB>, policy: Policy, image: string, ref: ImageReference, namespace: string | null): Promise<ImageExplanation> {
  const digest = ref.digest ?? (await tags.find(db, ref.registry, ref.repository, ref.tag ?? 'latest'));
  const id = digest === null ? null : await images.findId(db, ref.registry, ref.repository, digest);
  const [input] = id === null ? [] : await decisions.loadInputs(db, [id], requiredPredicateTypes(policy));
  return { image, digest, ...explain(policy, ref.registry, ref.repository, input?.facts ?? null, namespace, Date.now()) };
}
