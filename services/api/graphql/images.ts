import type { GraphQLResolveInfo } from 'graphql';
import * as images from '../../common/db/queries/images.ts';
import type { DecisionReason } from '../../common/domain/decision.ts';
import type { ManifestStatus } from '../../common/domain/outcome.ts';
import type { ConnectionModel, GraphqlContext, ImageModel } from './models.ts';
import { selects } from './lookahead.ts';
import { badInput, connection, decodeCursor, pageSize } from './pagination.ts';
import type { ImageFilter, InputMaybe } from './types.generated.ts';

const TOTAL_COUNT: ReadonlySet<string> = new Set(['totalCount']);

/** Predicate types are stored up to 1024 characters (signatures.predicate_type). */
const MAX_PREDICATE_TYPE = 1024;

function predicateType(v: InputMaybe<string> | undefined, field: string): string | null {
  if (v === null || v === undefined) {
    return null;
  }
  if (v.length === 0 || v.length > MAX_PREDICATE_TYPE) {
    throw badInput(`filter.${field} must be 1 to ${MAX_PREDICATE_TYPE} characters`);
  }
  return v;
}

/** The GraphQL filter → the query module's, under the policy in force. */
export function imageFilter(f: InputMaybe<ImageFilter> | undefined, policyVersion: string): images.ImageFilter {
  return {
    policyVersion,
    status: f?.status?.map((s) => s.toLowerCase() as ManifestStatus) ?? null,
    allowed: f?.allowed ?? null,
    decisionReason: f?.decisionReason?.map((r) => r.toLowerCase() as DecisionReason) ?? null,
    hasAttestation: f?.hasAttestation ?? null,
    attestationPredicateType: predicateType(f?.attestationPredicateType, 'attestationPredicateType'),
    missingAttestationPredicateType: predicateType(f?.missingAttestationPredicateType, 'missingAttestationPredicateType'),
  };
}

/**
 * A page of images in a scope, narrowed by a filter: one statement that returns the image rows
 * too; they prime the image loader, so nested fields that load an image by id ask nothing more.
 */
export async function imageConnection(
  { db, loaders, policyVersion }: GraphqlContext,
  info: GraphQLResolveInfo,
  scope: images.ImageScope,
  filter: InputMaybe<ImageFilter> | undefined,
  first: InputMaybe<number> | undefined,
  after: InputMaybe<string> | undefined,
): Promise<ConnectionModel<ImageModel>> {
  const f = imageFilter(filter, policyVersion);
  const cursor = decodeCursor('img', after);
  const size = pageSize(first);
  // The count, when asked for, runs beside the page rather than after it.
  const counted = selects(info, TOTAL_COUNT) ? images.countImages(db, scope, f) : null;
  counted?.catch(() => undefined);
  const page = await images.pageImages(db, scope, f, size, cursor);
  for (const row of page.rows) {
    loaders.image.prime(row.id, row);
  }
  return connection('img', page, (rows) => Promise.resolve(rows), () => counted ?? images.countImages(db, scope, f), cursor);
}
