import DataLoader from 'dataloader';
import type * as admissions from '../../common/db/queries/admissions.ts';
import type { Db } from '../../common/db/client.ts';
import * as decisions from '../../common/db/queries/decisions.ts';
import type * as deliveries from '../../common/db/queries/deliveries.ts';
import type * as registries from '../../common/db/queries/registries.ts';
import * as identities from '../../common/db/queries/identities.ts';
import * as images from '../../common/db/queries/images.ts';
import * as ownership from '../../common/db/queries/ownership.ts';
import * as repositories from '../../common/db/queries/repositories.ts';
import * as signatures from '../../common/db/queries/signatures.ts';
import * as tags from '../../common/db/queries/tags.ts';
import type { Digest } from '../../common/domain/digest.ts';

// What resolvers pass to each other (codegen "mappers"): the query modules' models, resolved field by field.
export type ImageModel = images.Image;
export type SignatureModel = signatures.Signature;
export type IdentityModel = identities.Identity;
export type RepositoryModel = repositories.Repository;
export interface RepositoryOwnerModel {
  readonly identityId: string;
  readonly repositoryId: string;
  /** Known when listed from the repository's side; loaded on demand otherwise. */
  readonly stats: identities.SigningStats | null;
}
export type OwnershipChangeModel = ownership.OwnershipChangeRecord;
export type TagModel = tags.Tag;
export type TagMoveModel = tags.TagMove;
export type DecisionModel = decisions.ImageDecision;
export type IndexLinkModel = images.IndexLink;
export type RegistryModel = registries.Registry;
export type DeliveryModel = deliveries.Delivery;
export interface SignerCountModel {
  readonly identityId: string;
  readonly images: number;
}

export interface ConnectionModel<T> {
  readonly edges: { readonly cursor: string; readonly node: T }[];
  readonly nodes: T[];
  readonly pageInfo: { readonly hasNextPage: boolean; readonly hasPreviousPage: boolean; readonly startCursor: string | null; readonly endCursor: string | null };
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
    image: new DataLoader<string, ImageModel | null>(async (ids) => byKey(ids, await images.byIds(db, ids), (r) => r.id)),
    imageByDigest: new DataLoader<{ repositoryId: string; digest: Digest }, ImageModel | null, string>(
      async (keys) => byKey(keys.map(digestKey), await images.byRepositoryDigests(db, keys), digestKey),
      { cacheKeyFn: digestKey },
    ),
    signatures: new DataLoader<string, SignatureModel[]>(async (ids) => {
      const rows = await signatures.byImageIds(db, ids);
      primeSigners(rows);
      return groupBy(ids, rows, (r) => r.manifestId);
    }),
    tags: new DataLoader<string, string[]>(async (ids) =>
      groupBy(ids, await tags.namesByImageIds(db, ids), (r) => r.imageId).map((rows) => rows.map((r) => r.name)),
    ),
    decision: new DataLoader<string, DecisionModel | null>(async (ids) =>
      byKey(ids, await decisions.byImageIds(db, ids, policyVersion), (r) => r.manifestId),
    ),
    children: new DataLoader<string, IndexLinkModel[]>(async (ids) => groupBy(ids, await images.childrenOf(db, ids), (r) => r.indexId)),
    parents: new DataLoader<string, IndexLinkModel[]>(async (ids) => groupBy(ids, await images.parentsOf(db, ids), (r) => r.childId)),
    identity: new DataLoader<string, IdentityModel | null>(async (ids) => byKey(ids, await identities.byIds(db, ids), (r) => r.id)),
    identityStats: new DataLoader<string, identities.SigningStats | null>(async (ids) =>
      byKey(ids, await identities.signingStats(db, ids), (r) => r.identityId),
    ),
    repository: new DataLoader<string, RepositoryModel | null>(async (ids) => byKey(ids, await repositories.byIds(db, ids), (r) => r.id)),
    repositoryOwners: new DataLoader<string, ownership.RepositoryOwner[]>(async (ids) =>
      groupBy(ids, await ownership.owners(db, ids), (r) => r.repositoryId),
    ),
    ownerStats: new DataLoader<{ identityId: string; repositoryId: string }, identities.SigningStats | null, string>(
      async (keys) => byKey(keys.map(ownerKey), await ownership.ownerStats(db, keys), ownerKey),
      { cacheKeyFn: ownerKey },
    ),
    ownershipChange: new DataLoader<string, OwnershipChangeModel | null>(async (ids) => byKey(ids, await ownership.changesByIds(db, ids), (r) => r.id)),
  };
  /** The verified signers came along with their signatures (joined): the identity loader needs no query for them. */
  function primeSigners(rows: readonly SignatureModel[]): void {
    for (const r of rows) {
      if (r.signer !== null) {
        loaders.identity.prime(r.signer.id, r.signer);
      }
    }
  }
  /** An image and its signatures read in one statement: every loader that would ask for them is answered already. */
  function primeImage(image: ImageModel, rows: SignatureModel[]): void {
    loaders.image.prime(image.id, image);
    loaders.signatures.prime(image.id, rows);
    primeSigners(rows);
  }
  return { ...loaders, primeImage };
}
export type Loaders = ReturnType<typeof createLoaders>;

/** An admission request as recorded (the admission record). */
export type AdmissionRecordModel = admissions.AdmissionRecord;
