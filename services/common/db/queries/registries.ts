import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DB } from '../schema.generated.ts';
import { bytewise, page, prefixPattern, type Page } from './fragments.ts';
import { baseOf } from './redecision.ts';

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

/**
 * Counts over the registry's images, with their decisions under `policyVersion`: three primary-key
 * lookups in one statement. A version with a base (policies.base_version) adds the base's tallies
 * less those of the base's rows its own replace ({@link shadowed}).
 */
export async function summary(db: Kysely<DB>, registryId: string, policyVersion: string): Promise<RegistrySummary> {
  const { rows } = await sql<Record<keyof RegistrySummary | 'base', string | null>>`
    SELECT t.repositories, t.images, t.signed, t.verified, d.allowed, d.denied, p.base_version AS base
    FROM (SELECT) one
    LEFT JOIN registry_tallies t ON t.registry_id = ${registryId}
    LEFT JOIN registry_decision_tallies d ON d.registry_id = ${registryId} AND d.policy_version = ${policyVersion}
    LEFT JOIN policies p ON p.version = ${policyVersion}`.execute(db);
  const r = rows[0];
  const n = (k: keyof RegistrySummary) => Number(r?.[k] ?? 0);
  let { allowed, denied } = { allowed: n('allowed'), denied: n('denied') };
  const base = r?.base ?? null;
  if (base !== null) {
    const { rows: b } = await sql<{ allowed: string; denied: string }>`
      SELECT allowed, denied FROM registry_decision_tallies WHERE registry_id = ${registryId} AND policy_version = ${base}`.execute(db);
    const gone = (await shadowed(db, registryId, policyVersion, base, null))[0];
    allowed += Number(b[0]?.allowed ?? 0) - (gone?.allowed ?? 0);
    denied += Number(b[0]?.denied ?? 0) - (gone?.denied ?? 0);
  }
  return { repositories: n('repositories'), images: n('images'), signed: n('signed'), verified: n('verified'), allowed, denied };
}

/**
 * The outcomes of `base`'s rows of the registry's images that have a row under `policyVersion`
 * too (what the base's tallies count and the version's decisions replace), per UTC day of the
 * image's first_seen_at from `since` when given (else one row, day null). Reads the version's own
 * rows: a policy edit's, while its untouched decisions are being carried over.
 */
async function shadowed(db: Kysely<DB>, registryId: string, policyVersion: string, base: string, since: RawBuilder<unknown> | null) {
  const day = since === null ? sql`NULL::timestamptz` : sql`date_trunc('day', m.first_seen_at, 'UTC')`;
  const { rows } = await sql<{ day: Date | null; allowed: string; denied: string }>`
    SELECT ${day} AS day, count(*) FILTER (WHERE b.allowed) AS allowed, count(*) FILTER (WHERE NOT b.allowed) AS denied
    FROM decisions v
    JOIN decisions b ON b.manifest_id = v.manifest_id AND b.policy_version = ${base}
    JOIN manifests m ON m.id = v.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    WHERE v.policy_version = ${policyVersion} AND r.registry_id = ${registryId} ${since === null ? sql`` : sql`AND m.first_seen_at >= ${since}`}
    GROUP BY 1`.execute(db);
  return rows.map((r) => ({ day: r.day, allowed: Number(r.allowed), denied: Number(r.denied) }));
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
  const base = await baseOf(db, policyVersion);
  // Range scans of the window (day is the last key of each primary key).
  const tally = (version: string) => sql`(SELECT day, allowed, denied FROM registry_decision_days WHERE registry_id = ${registryId} AND policy_version = ${version} AND day >= ${since})`;
  const { rows } = await sql<{ day: Date; images: string; allowed: string | null; denied: string | null }>`
    SELECT i.day, i.images, coalesce(d.allowed, 0) + coalesce(b.allowed, 0) AS allowed, coalesce(d.denied, 0) + coalesce(b.denied, 0) AS denied
    FROM registry_image_days i
    LEFT JOIN ${tally(policyVersion)} d ON d.day = i.day
    LEFT JOIN ${base === null ? sql`(SELECT NULL::timestamptz AS day, NULL::bigint AS allowed, NULL::bigint AS denied WHERE false)` : tally(base)} b ON b.day = i.day
    WHERE i.registry_id = ${registryId} AND i.day >= ${since} AND i.images > 0
    ORDER BY i.day`.execute(db);
  const gone = new Map(base === null ? [] : (await shadowed(db, registryId, policyVersion, base, since)).map((g) => [g.day!.getTime(), g]));
  return rows.map((r) => {
    const g = gone.get(r.day.getTime());
    const allowed = Number(r.allowed ?? 0) - (g?.allowed ?? 0);
    const denied = Number(r.denied ?? 0) - (g?.denied ?? 0);
    return { day: r.day, allowed, denied, undecided: Number(r.images) - allowed - denied };
  });
}
