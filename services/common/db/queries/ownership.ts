import type { Kysely } from 'kysely';
import type { DB } from '../schema.generated.ts';
import type { OwnershipChange } from './manifests.ts';

/** An ownership change with the identities that signed in the repository before it. */
export interface OwnershipChangeDetail extends Omit<OwnershipChange, 'previousOwners'> {
  readonly previousOwners: readonly { subject: string; issuer: string | null }[];
  readonly detectedAt: Date;
  readonly notifiedAt: Date | null;
}

/** One ownership change with what an alert about it says. */
export async function loadOwnershipChange(db: Kysely<DB>, id: string): Promise<OwnershipChangeDetail | null> {
  const row = await db
    .selectFrom('ownership_changes as o')
    .innerJoin('repositories as r', 'r.id', 'o.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .innerJoin('manifests as m', 'm.id', 'o.manifest_id')
    .innerJoin('identities as i', 'i.id', 'o.identity_id')
    .select(['o.id', 'o.kind', 'g.host', 'r.name', 'm.digest', 'i.subject', 'i.issuer', 'o.previous_owner_ids', 'o.detected_at', 'o.notified_at'])
    .where('o.id', '=', id)
    .executeTakeFirst();
  if (row === undefined) {
    return null;
  }
  const previous =
    row.previous_owner_ids.length === 0
      ? []
      : await db.selectFrom('identities').select(['id', 'subject', 'issuer']).where('id', 'in', row.previous_owner_ids).execute();
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

export async function markOwnershipChangeNotified(db: Kysely<DB>, id: string): Promise<void> {
  await db.updateTable('ownership_changes').set({ notified_at: new Date() }).where('id', '=', id).where('notified_at', 'is', null).execute();
}

/** Drift alerts detected since `since` and not yet delivered. */
export async function listPendingOwnershipAlerts(db: Kysely<DB>, since: Date): Promise<string[]> {
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
