import DataLoader from 'dataloader';
import type { Db } from '../../common/db/client.ts';
import type { Digest } from '../../common/domain/digest.ts';
import {
  childrenByIndexIds,
  decisionsByImageIds,
  identitiesByIds,
  identityStatsInRepositories,
  imagesByIds,
  imagesByRepositoryDigests,
  ownersByRepositoryIds,
  ownershipChangesByIds,
  parentsByChildIds,
  repositoriesByIds,
  signaturesByImageIds,
  signingStatsByIdentityIds,
  tagsByImageIds,
  type ChildRow,
  type DecisionRow,
  type IdentityRow,
  type ImageRow,
  type OwnershipChangeRow,
  type RepositoryRow,
  type SignatureRow,
  type SigningStats,
  type TagMoveRow,
  type TagRow,
} from '../../common/db/queries/ledger.ts';

// What resolvers pass to each other (codegen "mappers"): database rows, resolved field by field.
export type ImageModel = ImageRow;
export type SignatureModel = SignatureRow;
export type IdentityModel = IdentityRow;
export type RepositoryModel = RepositoryRow;
export interface RepositoryOwnerModel {
  readonly identityId: string;
  readonly repositoryId: string;
  /** Known when listed from the repository's side; loaded on demand otherwise. */
  readonly stats: SigningStats | null;
}
export type OwnershipChangeModel = OwnershipChangeRow;
export type TagModel = TagRow;
export type TagMoveModel = TagMoveRow;
export type DecisionModel = DecisionRow;
export type IndexLinkModel = ChildRow;

export interface ConnectionModel<T> {
  readonly edges: { readonly cursor: string; readonly node: T }[];
  readonly nodes: T[];
  readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null };
  /** Counted only when `totalCount` is asked for. */
  readonly count: () => Promise<number>;
}

export interface GraphqlContext {
  readonly db: Db;
  readonly loaders: Loaders;
  /** The policy whose decisions `Image.decision` shows. */
  readonly policyVersion: string;
}

function byKey<K, V>(keys: readonly K[], rows: readonly V[], keyOf: (row: V) => K): (V | null)[] {
  const map = new Map(rows.map((r) => [keyOf(r), r]));
  return keys.map((k) => map.get(k) ?? null);
}

function groupBy<K, V>(keys: readonly K[], rows: readonly V[], keyOf: (row: V) => K): V[][] {
  const map = new Map<K, V[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = map.get(k);
    if (list === undefined) {
      map.set(k, [r]);
    } else {
      list.push(r);
    }
  }
  return keys.map((k) => map.get(k) ?? []);
}

/**
 * One set of DataLoaders per request: every field of every object in a response is fetched with
 * one statement per kind, however many objects there are.
 */
export function createLoaders(db: Db, policyVersion: string) {
  const digestKey = (k: { repositoryId: string; digest: Digest }) => `${k.repositoryId}@${k.digest}`;
  const ownerKey = (k: { identityId: string; repositoryId: string }) => `${k.repositoryId}/${k.identityId}`;
  const loaders = {
    image: new DataLoader<string, ImageRow | null>(async (ids) => byKey(ids, await imagesByIds(db, ids), (r) => r.id)),
    imageByDigest: new DataLoader<{ repositoryId: string; digest: Digest }, ImageRow | null, string>(
      async (keys) => byKey(keys.map(digestKey), await imagesByRepositoryDigests(db, keys), digestKey),
      { cacheKeyFn: digestKey },
    ),
    signatures: new DataLoader<string, SignatureRow[]>(async (ids) => {
      const rows = await signaturesByImageIds(db, ids);
      // The verified signers came along (joined): the identity loader needs no query for them.
      for (const r of rows) {
        if (r.identity_id !== null && r.identity_kind !== null && r.identity_first_seen_at !== null && r.subject !== null) {
          loaders.identity.prime(r.identity_id, {
            id: r.identity_id,
            kind: r.identity_kind,
            subject: r.subject,
            issuer: r.issuer,
            firstSeenAt: r.identity_first_seen_at,
          });
        }
      }
      return groupBy(ids, rows, (r) => r.manifest_id);
    }),
    tags: new DataLoader<string, string[]>(async (ids) =>
      groupBy(ids, await tagsByImageIds(db, ids), (r) => r.imageId).map((rows) => rows.map((r) => r.name)),
    ),
    decision: new DataLoader<string, DecisionRow | null>(async (ids) =>
      byKey(ids, await decisionsByImageIds(db, ids, policyVersion), (r) => r.manifest_id),
    ),
    children: new DataLoader<string, ChildRow[]>(async (ids) => groupBy(ids, await childrenByIndexIds(db, ids), (r) => r.index_id)),
    parents: new DataLoader<string, ChildRow[]>(async (ids) => groupBy(ids, await parentsByChildIds(db, ids), (r) => r.child_id)),
    identity: new DataLoader<string, IdentityRow | null>(async (ids) => byKey(ids, await identitiesByIds(db, ids), (r) => r.id)),
    identityStats: new DataLoader<string, SigningStats | null>(async (ids) =>
      byKey(ids, await signingStatsByIdentityIds(db, ids), (r) => r.identityId),
    ),
    repository: new DataLoader<string, RepositoryRow | null>(async (ids) => byKey(ids, await repositoriesByIds(db, ids), (r) => r.id)),
    repositoryOwners: new DataLoader<string, (SigningStats & { repositoryId: string })[]>(async (ids) =>
      groupBy(ids, await ownersByRepositoryIds(db, ids), (r) => r.repositoryId),
    ),
    ownerStats: new DataLoader<{ identityId: string; repositoryId: string }, SigningStats | null, string>(
      async (keys) => byKey(keys.map(ownerKey), await identityStatsInRepositories(db, keys), ownerKey),
      { cacheKeyFn: ownerKey },
    ),
    ownershipChange: new DataLoader<string, OwnershipChangeRow | null>(async (ids) => byKey(ids, await ownershipChangesByIds(db, ids), (r) => r.id)),
  };
  return loaders;
}
export type Loaders = ReturnType<typeof createLoaders>;
