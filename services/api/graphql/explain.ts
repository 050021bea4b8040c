import { createGraphQLError } from 'graphql-yoga';
import { ImageReferenceError, parseImageReference } from '../../common/domain/image-ref.ts';
import { namespaceIndex } from '../../common/policy/namespaces.ts';
import type { Policy } from '../../common/policy/policy.ts';
import { judge } from '../../core/admission-verdict.ts';
import { explainImage } from '../../core/explain-image.ts';
import { attestationResults } from './attestation-results.ts';
import { upper } from './resolvers.ts';
import type { Resolvers } from './types.generated.ts';

/** `Query.explain`: the same explanation as `signet explain`, under the policy this replica answers with. */
export function explainResolvers(policy: () => Policy): Resolvers {
  return {
    Query: {
      async explain(_, { image, namespace }, { db }) {
        let ref;
        try {
          ref = parseImageReference(image);
        } catch (err) {
          if (err instanceof ImageReferenceError) {
            throw createGraphQLError(err.message, { extensions: { code: 'BAD_USER_INPUT' } });
          }
          throw err;
        }
        const current = policy();
        const e = await explainImage(db, current, image, ref, namespace ?? null);
        const { verdict } = judge({ image, ...e.decision, publicMessage: e.decision.message }, namespaceIndex(current), e.namespace, Date.now(), false);
        return { ...e, ...e.decision, mode: upper(e.decision.mode), requirements: [...e.requirements], attestations: attestationResults(e.attestations), evidence: [...e.evidence], admission: verdict };
      },
    },
  };
}
