import type { Kysely, Transaction } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { SignatureRecord } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';
import { withRegistry } from './fragments.ts';
import * as identities from './identities.ts';

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

