import { sql, type Kysely } from 'kysely';
import type { DB } from '../schema.generated.ts';
import { bytewise, page, prefixPattern, type Page } from './fragments.ts';

// Registries: the hosts Signet has heard from, and what their ledger adds up to (the /ui overview).

export interface Registry {
  readonly id: string;
  readonly host: string;
  readonly firstSeenAt: Date;
}

/** How much of a registry is signed, verified and allowed. */
export interface RegistrySummary {
  readonly repositories: number;
  readonly images: number;
  readonly signed: number;
  readonly verified: number;
  readonly allowed: number;
  readonly denied: number;
}

/** Images first seen on one day (UTC), by their decision under a policy version. */
export interface OutcomeDay {
  readonly day: Date;
  readonly allowed: number;
  readonly denied: number;
  readonly undecided: number;
}

const columns = ['g.id', 'g.host', 'g.first_seen_at as firstSeenAt'] as const;

export function byIds(db: Kysely<DB>, ids: readonly string[]): Promise<Registry[]> {
  return db.selectFrom('registries as g').select(columns).where('g.id', 'in', ids).execute();
}

export async function find(db: Kysely<DB>, host: string): Promise<Registry | null> {
  return (await db.selectFrom('registries as g').select(columns).where('g.host', '=', host).executeTakeFirst()) ?? null;
}

function matching(db: Kysely<DB>, search: string | null) {
  const q = db.selectFrom('registries as g');
  return search === null ? q : q.where(bytewise('g.host'), 'like', prefixPattern(search));
}

/** Registries by host in byte order (a keyset page after the registry `after`), optionally those whose host starts with `search`. */
export async function pageRegistries(db: Kysely<DB>, search: string | null, first: number, after: string | null): Promise<Page<Registry>> {
  let q = matching(db, search).select(columns).orderBy(bytewise('g.host')).orderBy('g.id').limit(first + 1);
  if (after !== null) {
    q = q.where(sql<boolean>`(g.host COLLATE "C", g.id) > (SELECT host COLLATE "C", id FROM registries WHERE id = ${after})`);
  }
  return page(await q.execute(), first);
}

export async function countRegistries(db: Kysely<DB>, search: string | null): Promise<number> {
  const row = await matching(db, search).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

// The overview reads the registry tallies (migrations/2026-11-30T10-00-00_registry_tallies.sql):
// counters the ledger's writes keep in their own transactions, equal to the aggregates over the
// registry's images, signatures and decisions, so that each answer costs the rows it returns.

/** Counts over the registry's images, with their decisions under `policyVersion`: two primary-key lookups. */
export async function summary(db: Kysely<DB>, registryId: string, policyVersion: string): Promise<RegistrySummary> {
  const { rows } = await sql<Record<keyof RegistrySummary, string | null>>`
    SELECT t.repositories, t.images, t.signed, t.verified, d.allowed, d.denied
    FROM (SELECT) one
    LEFT JOIN registry_tallies t ON t.registry_id = ${registryId}
    LEFT JOIN registry_decision_tallies d ON d.registry_id = ${registryId} AND d.policy_version = ${policyVersion}`.execute(db);
  const r = rows[0];
  const n = (k: keyof RegistrySummary) => Number(r?.[k] ?? 0);
  return { repositories: n('repositories'), images: n('images'), signed: n('signed'), verified: n('verified'), allowed: n('allowed'), denied: n('denied') };
}

/** The identities with the most images signed (verified, not withdrawn) in the registry: the first rows of an index. */
export async function topSigners(db: Kysely<DB>, registryId: string, first: number): Promise<{ identityId: string; images: number }[]> {
  const rows = await db
    .selectFrom('registry_signers')
    .select(['identity_id as identityId', 'images'])
    .where('registry_id', '=', registryId)
    .where('images', '>', '0')
    .orderBy('images', 'desc')
    .orderBy('identity_id')
    .limit(first)
    .execute();
  return rows.map((r) => ({ identityId: r.identityId, images: Number(r.images) }));
}

/** Images first seen in the registry each day of the last `days` (UTC), by their decision under `policyVersion`; days with none are left out. */
export async function outcomes(db: Kysely<DB>, registryId: string, policyVersion: string, days: number): Promise<OutcomeDay[]> {
  const since = sql`date_trunc('day', now(), 'UTC') - make_interval(days => ${days - 1})`;
  // Both sides range scans of the window (day is the last key of each primary key).
  const { rows } = await sql<{ day: Date; images: string; allowed: string | null; denied: string | null }>`
    SELECT i.day, i.images, d.allowed, d.denied
    FROM registry_image_days i
    LEFT JOIN registry_decision_days d ON d.registry_id = ${registryId} AND d.policy_version = ${policyVersion} AND d.day >= ${since} AND d.day = i.day
    WHERE i.registry_id = ${registryId} AND i.day >= ${since} AND i.images > 0
    ORDER BY i.day`.execute(db);
  return rows.map((r) => {
    const allowed = Number(r.allowed ?? 0);
    const denied = Number(r.denied ?? 0);
    return { day: r.day, allowed, denied, undecided: Number(r.images) - allowed - denied };
  });
}
