import { type ExpressionBuilder, sql, type Kysely } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { ManifestStatus } from '../../domain/outcome.ts';
import type { DB } from '../schema.generated.ts';

// Reads behind the GraphQL API. The `…ByIds` functions take many keys at once (DataLoader batches);
// the `page…` functions return one page of a connection, newest first, keyed by a row id.

export interface ImageRow {
  readonly id: string;
  readonly repositoryId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: string;
  readonly status: ManifestStatus;
  readonly statusReason: string | null;
  readonly firstSeenAt: Date;
  readonly indexedAt: Date;
  readonly deletedAt: Date | null;
}

export interface RepositoryRow {
  readonly id: string;
  readonly registry: string;
  readonly name: string;
  readonly firstSeenAt: Date;
}

export interface IdentityRow {
  readonly id: string;
  readonly kind: 'email' | 'uri' | 'key';
  readonly subject: string;
  readonly issuer: string | null;
  readonly firstSeenAt: Date;
}

/** Signing times and image count of one identity within one scope (an image, a repository, everything). */
export interface SigningStats {
  readonly identityId: string;
  readonly firstSignedAt: Date;
  readonly lastSignedAt: Date;
  readonly imageCount: number;
}

export interface Page<T> {
  readonly rows: T[];
  readonly hasNextPage: boolean;
}

/** When a signature was made: Rekor's integrated time, else a TSA's, else when Signet first saw it. */
const signedAt = sql<Date>`coalesce(s.rekor_integrated_time, s.tsa_time, s.first_seen_at)`;

function selectImages(db: Kysely<DB>) {
  return db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select([
      'm.id',
      'm.repository_id as repositoryId',
      'g.host as registry',
      'r.name as repository',
      'm.digest',
      'm.media_type as mediaType',
      'm.size',
      'm.status',
      'm.status_reason as statusReason',
      'm.first_seen_at as firstSeenAt',
      'm.indexed_at as indexedAt',
      'm.deleted_at as deletedAt',
    ]);
}

export function imagesByIds(db: Kysely<DB>, ids: readonly string[]): Promise<ImageRow[]> {
  return selectImages(db).where('m.id', 'in', ids).execute();
}

export function imagesByRepositoryDigests(db: Kysely<DB>, keys: readonly { repositoryId: string; digest: Digest }[]): Promise<ImageRow[]> {
  return selectImages(db)
    .where((eb) => eb(eb.refTuple('m.repository_id', 'm.digest'), 'in', keys.map((k) => eb.tuple(k.repositoryId, k.digest))))
    .execute();
}

/** The image for `digest` in a repository, or for what `tag` points at now. */
export async function findImage(
  db: Kysely<DB>,
  registry: string,
  repository: string,
  ref: { digest: Digest } | { tag: string },
): Promise<ImageRow | null> {
  let q = selectImages(db).where('g.host', '=', registry).where('r.name', '=', repository);
  q =
    'digest' in ref
      ? q.where('m.digest', '=', ref.digest)
      : q.where('m.digest', '=', (eb) => eb.selectFrom('tags as t').select('t.digest').where('t.repository_id', '=', eb.ref('r.id')).where('t.name', '=', ref.tag));
  return (await q.executeTakeFirst()) ?? null;
}

function selectSignatures(db: Kysely<DB>) {
  return db
    .selectFrom('signatures as s')
    .leftJoin('identities as i', 'i.id', 's.identity_id')
    .select([
      's.id',
      's.manifest_id',
      's.format',
      's.outcome',
      's.reason',
      's.identity_id',
      's.subject',
      's.issuer',
      's.claims',
      's.key_fingerprint',
      's.key_source',
      's.key_name',
      's.certificate_fingerprint',
      's.certificate_not_before',
      's.certificate_not_after',
      's.rekor_log_id',
      's.rekor_log_index',
      's.rekor_integrated_time',
      's.tsa_time',
      's.kind',
      's.predicate_type',
      's.trust_root_version',
      's.source_digest',
      's.layer_digest',
      's.first_seen_at',
      's.verified_at',
      'i.kind as identity_kind',
      'i.first_seen_at as identity_first_seen_at',
    ]);
}

/** Every signature of each image, with its verified signer's identity row (joined: no second query). */
export function signaturesByImageIds(db: Kysely<DB>, imageIds: readonly string[]) {
  return selectSignatures(db).where('s.manifest_id', 'in', imageIds).orderBy('s.id').execute();
}

/** A claim to look for: `claims @> {name: value}` (the GIN index on claims answers it). */
export interface ClaimFilter {
  readonly name: string;
  readonly value: string;
  readonly verifiedOnly: boolean;
}

function hasClaim(f: ClaimFilter) {
  return (eb: ExpressionBuilder<DB & { s: DB['signatures'] }, 's'>) =>
    eb.and([
      eb(sql`s.claims`, '@>', sql`${JSON.stringify({ [f.name]: f.value })}::jsonb`),
      ...(f.verifiedOnly ? [eb('s.outcome', '=', 'verified')] : []),
    ]);
}

/** Signatures and attestations carrying a claim, newest first. */
export async function pageSignaturesWithClaim(db: Kysely<DB>, f: ClaimFilter, first: number, after: string | null): Promise<Page<SignatureRow>> {
  let q = selectSignatures(db).where(hasClaim(f)).orderBy('s.id', 'desc').limit(first + 1);
  if (after !== null) {
    q = q.where('s.id', '<', after);
  }
  return page(await q.execute(), first);
}

export async function countSignaturesWithClaim(db: Kysely<DB>, f: ClaimFilter): Promise<number> {
  const row = await db
    .selectFrom('signatures as s')
    .where(hasClaim(f))
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
export type SignatureRow = Awaited<ReturnType<typeof signaturesByImageIds>>[number];

/** When a stored signature was made: Rekor's integrated time, else a TSA's, else when Signet first saw it. */
export function signatureTime(s: Pick<SignatureRow, 'rekor_integrated_time' | 'tsa_time' | 'first_seen_at'>): Date {
  return s.rekor_integrated_time ?? s.tsa_time ?? s.first_seen_at;
}

/** Current tags naming each image. */
export function tagsByImageIds(db: Kysely<DB>, imageIds: readonly string[]) {
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.digest'))
    .select(['m.id as imageId', 't.name'])
    .where('m.id', 'in', imageIds)
    .orderBy('t.name')
    .execute();
}

export function identitiesByIds(db: Kysely<DB>, ids: readonly string[]): Promise<IdentityRow[]> {
  return db
    .selectFrom('identities')
    .select(['id', 'kind', 'subject', 'issuer', 'first_seen_at as firstSeenAt'])
    .where('id', 'in', ids)
    .execute();
}

export function identitiesBySubject(db: Kysely<DB>, subject: string, issuer?: string | null): Promise<IdentityRow[]> {
  let q = db.selectFrom('identities').select(['id', 'kind', 'subject', 'issuer', 'first_seen_at as firstSeenAt']).where('subject', '=', subject);
  if (issuer !== undefined && issuer !== null) {
    q = q.where('issuer', '=', issuer);
  }
  return q.orderBy('id').limit(100).execute();
}

export function repositoriesByIds(db: Kysely<DB>, ids: readonly string[]): Promise<RepositoryRow[]> {
  return db
    .selectFrom('repositories as r')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['r.id', 'g.host as registry', 'r.name', 'r.first_seen_at as firstSeenAt'])
    .where('r.id', 'in', ids)
    .execute();
}

export async function findRepository(db: Kysely<DB>, registry: string, name: string): Promise<RepositoryRow | null> {
  const row = await db
    .selectFrom('repositories as r')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['r.id', 'g.host as registry', 'r.name', 'r.first_seen_at as firstSeenAt'])
    .where('g.host', '=', registry)
    .where('r.name', '=', name)
    .executeTakeFirst();
  return row ?? null;
}

/** Earliest and latest verified signature of each identity, anywhere. */
export async function signingStatsByIdentityIds(db: Kysely<DB>, identityIds: readonly string[]): Promise<SigningStats[]> {
  const rows = await db
    .selectFrom('signatures as s')
    .select('s.identity_id')
    .select((eb) => [eb.fn.min(signedAt).as('first'), eb.fn.max(signedAt).as('last'), eb.fn.count<string>('s.manifest_id').distinct().as('images')])
    .where('s.identity_id', 'in', identityIds)
    .groupBy('s.identity_id')
    .execute();
  return rows.map((r) => ({ identityId: r.identity_id ?? '', firstSignedAt: r.first, lastSignedAt: r.last, imageCount: Number(r.images) }));
}

/**
 * Every verified signer of each repository (or only `identityIds` among them), with first and last
 * signed times and image counts.
 */
export async function ownersByRepositoryIds(
  db: Kysely<DB>,
  repositoryIds: readonly string[],
  identityIds?: readonly string[],
): Promise<(SigningStats & { repositoryId: string })[]> {
  let q = db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .select(['m.repository_id', 's.identity_id'])
    .select((eb) => [eb.fn.min(signedAt).as('first'), eb.fn.max(signedAt).as('last'), eb.fn.count<string>('s.manifest_id').distinct().as('images')])
    .where('m.repository_id', 'in', repositoryIds);
  q = identityIds === undefined ? q.where('s.identity_id', 'is not', null) : q.where('s.identity_id', 'in', identityIds);
  const rows = await q.groupBy(['m.repository_id', 's.identity_id']).orderBy('first').execute();
  return rows.map((r) => ({
    repositoryId: r.repository_id,
    identityId: r.identity_id ?? '',
    firstSignedAt: r.first,
    lastSignedAt: r.last,
    imageCount: Number(r.images),
  }));
}

export function decisionsByImageIds(db: Kysely<DB>, imageIds: readonly string[], policyVersion: string) {
  return db
    .selectFrom('decisions')
    .select(['manifest_id', 'allowed', 'reason', 'message', 'rule', 'policy_version', 'signers', 'verified_at', 'decided_at'])
    .where('manifest_id', 'in', imageIds)
    .where('policy_version', '=', policyVersion)
    .execute();
}
export type DecisionRow = Awaited<ReturnType<typeof decisionsByImageIds>>[number];

/** The newest denials under a policy version (decided_at order; the policy index narrows the scan). */
export function recentDenials(db: Kysely<DB>, policyVersion: string, first: number): Promise<DecisionRow[]> {
  return db
    .selectFrom('decisions')
    .select(['manifest_id', 'allowed', 'reason', 'message', 'rule', 'policy_version', 'signers', 'verified_at', 'decided_at'])
    .where('policy_version', '=', policyVersion)
    .where('allowed', '=', false)
    .orderBy('decided_at', 'desc')
    .limit(first)
    .execute();
}

const childColumns = ['c.index_id', 'c.child_id', 'c.position', 'c.platform_os', 'c.platform_architecture', 'c.platform_variant'] as const;

export function childrenByIndexIds(db: Kysely<DB>, indexIds: readonly string[]) {
  return db.selectFrom('manifest_children as c').select(childColumns).where('c.index_id', 'in', indexIds).orderBy('c.position').execute();
}

export function parentsByChildIds(db: Kysely<DB>, childIds: readonly string[]) {
  return db.selectFrom('manifest_children as c').select(childColumns).where('c.child_id', 'in', childIds).orderBy('c.index_id').execute();
}
export type ChildRow = Awaited<ReturnType<typeof childrenByIndexIds>>[number];

function page<T extends { id: string }>(rows: T[], first: number): Page<T> {
  return { rows: rows.slice(0, first), hasNextPage: rows.length > first };
}

/** Images an identity signed (verified), newest manifest first. */
export async function pageIdentityImages(
  db: Kysely<DB>,
  identityId: string,
  opts: { first: number; after: string | null; registry: string | null; repository: string | null },
): Promise<Page<{ id: string }>> {
  let q = db
    .selectFrom('signatures as s')
    .select('s.manifest_id as id')
    .distinct()
    .where('s.identity_id', '=', identityId)
    .orderBy('s.manifest_id', 'desc')
    .limit(opts.first + 1);
  if (opts.after !== null) {
    q = q.where('s.manifest_id', '<', opts.after);
  }
  if (opts.registry !== null || opts.repository !== null) {
    q = q.where('s.manifest_id', 'in', manifestsIn(db, opts.registry, opts.repository));
  }
  return page(await q.execute(), opts.first);
}

export async function countIdentityImages(db: Kysely<DB>, identityId: string, registry: string | null, repository: string | null): Promise<number> {
  let q = db
    .selectFrom('signatures as s')
    .select((eb) => eb.fn.count<string>('s.manifest_id').distinct().as('n'))
    .where('s.identity_id', '=', identityId);
  if (registry !== null || repository !== null) {
    q = q.where('s.manifest_id', 'in', manifestsIn(db, registry, repository));
  }
  const row = await q.executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Ids of the manifests in a registry and/or repository. */
function manifestsIn(db: Kysely<DB>, registry: string | null, repository: string | null) {
  let m = db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select('m.id');
  if (registry !== null) {
    m = m.where('g.host', '=', registry);
  }
  if (repository !== null) {
    m = m.where('r.name', '=', repository);
  }
  return m;
}

/** Images in a repository, newest first. */
export async function pageRepositoryImages(db: Kysely<DB>, repositoryId: string, first: number, after: string | null): Promise<Page<{ id: string }>> {
  let q = db.selectFrom('manifests').select('id').where('repository_id', '=', repositoryId).orderBy('id', 'desc').limit(first + 1);
  if (after !== null) {
    q = q.where('id', '<', after);
  }
  return page(await q.execute(), first);
}

export async function countRepositoryImages(db: Kysely<DB>, repositoryId: string): Promise<number> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.countAll<string>().as('n')).where('repository_id', '=', repositoryId).executeTakeFirstOrThrow();
  return Number(row.n);
}

export function tagsByRepositoryId(db: Kysely<DB>, repositoryId: string) {
  return db.selectFrom('tags').select(['repository_id', 'name', 'digest', 'updated_at']).where('repository_id', '=', repositoryId).orderBy('name').execute();
}
export type TagRow = Awaited<ReturnType<typeof tagsByRepositoryId>>[number];

function selectTagMoves(db: Kysely<DB>, repositoryId: string, tag: string | null) {
  let q = db.selectFrom('tag_history').where('repository_id', '=', repositoryId);
  if (tag !== null) {
    q = q.where('name', '=', tag);
  }
  return q;
}

export async function pageTagMoves(db: Kysely<DB>, repositoryId: string, tag: string | null, first: number, after: string | null) {
  let q = selectTagMoves(db, repositoryId, tag)
    .select(['id', 'name', 'digest', 'previous_digest', 'seen_at'])
    .orderBy('id', 'desc')
    .limit(first + 1);
  if (after !== null) {
    q = q.where('id', '<', after);
  }
  return page(await q.execute(), first);
}
export type TagMoveRow = Awaited<ReturnType<typeof pageTagMoves>>['rows'][number];

export async function countTagMoves(db: Kysely<DB>, repositoryId: string, tag: string | null): Promise<number> {
  const row = await selectTagMoves(db, repositoryId, tag).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

export interface OwnershipChangeFilter {
  readonly repositoryId?: string;
  readonly identityId?: string;
  readonly registry?: string | null;
  readonly repository?: string | null;
  readonly kind?: 'initial' | 'added' | null;
}

function selectOwnershipChanges(db: Kysely<DB>, f: OwnershipChangeFilter) {
  let q = db.selectFrom('ownership_changes as o');
  if (f.repositoryId !== undefined) {
    q = q.where('o.repository_id', '=', f.repositoryId);
  }
  if (f.identityId !== undefined) {
    q = q.where('o.identity_id', '=', f.identityId);
  }
  if (f.kind !== undefined && f.kind !== null) {
    q = q.where('o.kind', '=', f.kind);
  }
  if ((f.registry ?? null) !== null || (f.repository ?? null) !== null) {
    q = q.where('o.repository_id', 'in', (eb) => {
      let r = eb.selectFrom('repositories as r').innerJoin('registries as g', 'g.id', 'r.registry_id').select('r.id');
      if (f.registry !== undefined && f.registry !== null) {
        r = r.where('g.host', '=', f.registry);
      }
      if (f.repository !== undefined && f.repository !== null) {
        r = r.where('r.name', '=', f.repository);
      }
      return r;
    });
  }
  return q;
}

const ownershipColumns = ['o.id', 'o.kind', 'o.repository_id', 'o.identity_id', 'o.manifest_id', 'o.previous_owner_ids', 'o.detected_at'] as const;

export async function pageOwnershipChanges(db: Kysely<DB>, f: OwnershipChangeFilter, first: number, after: string | null, order: 'asc' | 'desc' = 'desc') {
  let q = selectOwnershipChanges(db, f)
    .select(ownershipColumns)
    .orderBy('o.id', order)
    .limit(first + 1);
  if (after !== null) {
    q = q.where('o.id', order === 'desc' ? '<' : '>', after);
  }
  return page(await q.execute(), first);
}
export type OwnershipChangeRow = Awaited<ReturnType<typeof pageOwnershipChanges>>['rows'][number];

export async function countOwnershipChanges(db: Kysely<DB>, f: OwnershipChangeFilter): Promise<number> {
  const row = await selectOwnershipChanges(db, f).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

export function ownershipChangesByIds(db: Kysely<DB>, ids: readonly string[]) {
  return db.selectFrom('ownership_changes as o').select(ownershipColumns).where('o.id', 'in', ids).execute();
}

/** Identities' signing stats within repositories, for (identity, repository) pairs (one statement). */
export async function identityStatsInRepositories(
  db: Kysely<DB>,
  keys: readonly { identityId: string; repositoryId: string }[],
): Promise<(SigningStats & { repositoryId: string })[]> {
  if (keys.length === 0) {
    return [];
  }
  return ownersByRepositoryIds(db, [...new Set(keys.map((k) => k.repositoryId))], [...new Set(keys.map((k) => k.identityId))]);
}
