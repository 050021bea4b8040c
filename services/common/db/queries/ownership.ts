import type { Kysely, Transaction } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { SignatureRecord } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';
import { page, signedAt, withRegistry, type Page } from './fragments.ts';
import * as identities from './identities.ts';
import * as repositories from './repositories.ts';

// Ownership: the first time each identity signs (verified) in a repository (ownership_changes),
// and who signs where (from the signatures).

/** An identity that signed in a repository for the first time (see migrations: ownership_changes). */
export interface OwnershipChange {
  readonly id: string;
  /** `initial`: the repository's first signer; `added`: drift — a signer new to a signed repository. */
  readonly kind: 'initial' | 'added';
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly subject: string;
  readonly issuer: string | null;
  readonly previousOwners: number;
}

/** An ownership change with the identities that signed in the repository before it. */
export interface OwnershipChangeDetail extends Omit<OwnershipChange, 'previousOwners'> {
  readonly previousOwners: readonly { subject: string; issuer: string | null }[];
  readonly detectedAt: Date;
  readonly notifiedAt: Date | null;
}

/** An ownership change as stored: ids of the repository, identity, image and earlier owners. */
export interface OwnershipChangeRecord {
  readonly id: string;
  readonly kind: 'initial' | 'added';
  readonly repositoryId: string;
  readonly identityId: string;
  readonly manifestId: string;
  readonly previousOwnerIds: string[];
  readonly detectedAt: Date;
}

/** An identity's signing stats within one repository. */
export interface RepositoryOwner extends identities.SigningStats {
  readonly repositoryId: string;
}

/**
 * Records the identities in `signers` that never signed in the repository before, each with the
 * image and signature it first signed with there. Runs under the repository lock, so "before" is
 * exact even with concurrent jobs for the same repository.
 */
export async function recordChanges(
  trx: Transaction<DB>,
  repositoryId: string,
  signers: ReadonlyMap<string, { manifestId: string; digest: Digest; sig: SignatureRecord }>,
): Promise<Omit<OwnershipChange, 'registry' | 'repository'>[]> {
  if (signers.size === 0) {
    return [];
  }
  const owners = (
    await trx.selectFrom('ownership_changes').select('identity_id').where('repository_id', '=', repositoryId).orderBy('id').execute()
  ).map((r) => r.identity_id);
  const known = new Set(owners);
  const changes: Omit<OwnershipChange, 'registry' | 'repository'>[] = [];
  for (const [identityId, { manifestId, digest, sig }] of signers) {
    if (known.has(identityId)) {
      continue;
    }
    const kind = owners.length === 0 ? 'initial' : 'added';
    const { id } = await trx
      .insertInto('ownership_changes')
      .values({ repository_id: repositoryId, identity_id: identityId, manifest_id: manifestId, kind, previous_owner_ids: [...owners] })
      .returning('id')
      .executeTakeFirstOrThrow();
    const identity = sig.verdict.identity;
    changes.push({
      id,
      kind,
      digest,
      subject: identity?.subject ?? '',
      issuer: identity?.issuer ?? null,
      previousOwners: owners.length,
    });
    owners.push(identityId);
    known.add(identityId);
  }
  return changes;
}

/** One ownership change with what an alert about it says. */
export async function loadChange(db: Kysely<DB>, id: string): Promise<OwnershipChangeDetail | null> {
  const row = await db
    .selectFrom('repositories as r')
    .$call(withRegistry)
    .innerJoin('ownership_changes as o', 'o.repository_id', 'r.id')
    .innerJoin('manifests as m', 'm.id', 'o.manifest_id')
    .innerJoin('identities as i', 'i.id', 'o.identity_id')
    .select(['o.id', 'o.kind', 'g.host', 'r.name', 'm.digest', 'i.subject', 'i.issuer', 'o.previous_owner_ids', 'o.detected_at', 'o.notified_at'])
    .where('o.id', '=', id)
    .executeTakeFirst();
  if (row === undefined) {
    return null;
  }
  const previous = row.previous_owner_ids.length === 0 ? [] : await identities.byIds(db, row.previous_owner_ids);
  const byId = new Map(previous.map((p) => [p.id, { subject: p.subject, issuer: p.issuer }]));
  return {
    id: row.id,
    kind: row.kind,
    registry: row.host,
    repository: row.name,
    digest: row.digest,
    subject: row.subject,
    issuer: row.issuer,
    previousOwners: row.previous_owner_ids.flatMap((id) => byId.get(id) ?? []),
    detectedAt: row.detected_at,
    notifiedAt: row.notified_at,
  };
}

export async function markNotified(db: Kysely<DB>, id: string): Promise<void> {
  await db.updateTable('ownership_changes').set({ notified_at: new Date() }).where('id', '=', id).where('notified_at', 'is', null).execute();
}

/** Drift alerts detected since `since` and not yet delivered. */
export async function listPendingAlerts(db: Kysely<DB>, since: Date): Promise<string[]> {
  const rows = await db
    .selectFrom('ownership_changes')
    .select('id')
    .where('notified_at', 'is', null)
    .where('kind', '=', 'added')
    .where('detected_at', '>=', since)
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

export interface OwnershipChangeFilter {
  readonly repositoryId?: string;
  readonly identityId?: string;
  readonly registry?: string | null;
  readonly repository?: string | null;
  readonly kind?: 'initial' | 'added' | null;
}

function selectChanges(db: Kysely<DB>, f: OwnershipChangeFilter) {
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
  const registry = f.registry ?? null;
  const repository = f.repository ?? null;
  if (registry !== null || repository !== null) {
    q = q.where('o.repository_id', 'in', repositories.idsIn(db, registry, repository));
  }
  return q;
}

const columns = [
  'o.id',
  'o.kind',
  'o.repository_id as repositoryId',
  'o.identity_id as identityId',
  'o.manifest_id as manifestId',
  'o.previous_owner_ids as previousOwnerIds',
  'o.detected_at as detectedAt',
] as const;

/** Ownership changes matching `f`, newest first (or oldest first with `order` asc). */
export async function pageChanges(
  db: Kysely<DB>,
  f: OwnershipChangeFilter,
  first: number,
  after: string | null,
  order: 'asc' | 'desc' = 'desc',
): Promise<Page<OwnershipChangeRecord>> {
  let q = selectChanges(db, f)
    .select(columns)
    .orderBy('o.id', order)
    .limit(first + 1);
  if (after !== null) {
    q = q.where('o.id', order === 'desc' ? '<' : '>', after);
  }
  return page(await q.execute(), first);
}

export async function countChanges(db: Kysely<DB>, f: OwnershipChangeFilter): Promise<number> {
  const row = await selectChanges(db, f).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

export function changesByIds(db: Kysely<DB>, ids: readonly string[]): Promise<OwnershipChangeRecord[]> {
  return db.selectFrom('ownership_changes as o').select(columns).where('o.id', 'in', ids).execute();
}

/**
 * Every verified signer of each repository (or only `identityIds` among them), with first and last
 * signed times and image counts, in the order they first signed. Withdrawn signatures count for nothing.
 */
export async function owners(db: Kysely<DB>, repositoryIds: readonly string[], identityIds?: readonly string[]): Promise<RepositoryOwner[]> {
  let q = db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .select(['m.repository_id', 's.identity_id'])
    .select((eb) => [eb.fn.min(signedAt).as('first'), eb.fn.max(signedAt).as('last'), eb.fn.count<string>('s.manifest_id').distinct().as('images')])
    .where('m.repository_id', 'in', repositoryIds)
    .where('s.withdrawn_at', 'is', null);
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

/** Identities' signing stats within repositories, for (identity, repository) pairs (one statement). */
export async function ownerStats(db: Kysely<DB>, keys: readonly { identityId: string; repositoryId: string }[]): Promise<RepositoryOwner[]> {
  if (keys.length === 0) {
    return [];
  }
  return owners(db, [...new Set(keys.map((k) => k.repositoryId))], [...new Set(keys.map((k) => k.identityId))]);
}
