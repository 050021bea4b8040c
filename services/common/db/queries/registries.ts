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

/** Counts over the registry's images, with their decisions under `policyVersion`: one statement. */
export async function summary(db: Kysely<DB>, registryId: string, policyVersion: string): Promise<RegistrySummary> {
  const { rows } = await sql<Record<keyof RegistrySummary, string>>`
    SELECT (SELECT count(*) FROM repositories WHERE registry_id = ${registryId}) AS repositories,
           count(m.id) AS images,
           count(m.id) FILTER (WHERE m.status <> 'unsigned') AS signed,
           count(m.id) FILTER (WHERE m.status = 'verified') AS verified,
           count(d.manifest_id) FILTER (WHERE d.allowed) AS allowed,
           count(d.manifest_id) FILTER (WHERE NOT d.allowed) AS denied
    FROM repositories r
    JOIN manifests m ON m.repository_id = r.id
    LEFT JOIN decisions d ON d.manifest_id = m.id AND d.policy_version = ${policyVersion}
    WHERE r.registry_id = ${registryId}`.execute(db);
  const r = rows[0];
  const n = (k: keyof RegistrySummary) => Number(r?.[k] ?? 0);
  return { repositories: n('repositories'), images: n('images'), signed: n('signed'), verified: n('verified'), allowed: n('allowed'), denied: n('denied') };
}

/** The identities with the most images signed (verified, not withdrawn) in the registry. */
export async function topSigners(db: Kysely<DB>, registryId: string, first: number): Promise<{ identityId: string; images: number }[]> {
  const rows = await db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select(['s.identity_id as identityId', (eb) => eb.fn.count<string>('s.manifest_id').distinct().as('images')])
    .where('r.registry_id', '=', registryId)
    .where('s.identity_id', 'is not', null)
    .where('s.withdrawn_at', 'is', null)
    .groupBy('s.identity_id')
    .orderBy('images', 'desc')
    .orderBy('s.identity_id')
    .limit(first)
    .execute();
  return rows.map((r) => ({ identityId: r.identityId ?? '', images: Number(r.images) }));
}

/** Images first seen in the registry each day of the last `days` (UTC), by their decision under `policyVersion`; days with none are left out. */
export async function outcomes(db: Kysely<DB>, registryId: string, policyVersion: string, days: number): Promise<OutcomeDay[]> {
  const { rows } = await sql<{ day: Date; allowed: string; denied: string; undecided: string }>`
    SELECT date_trunc('day', m.first_seen_at, 'UTC') AS day,
           count(*) FILTER (WHERE d.allowed) AS allowed,
           count(*) FILTER (WHERE NOT d.allowed) AS denied,
           count(*) FILTER (WHERE d.manifest_id IS NULL) AS undecided
    FROM repositories r
    JOIN manifests m ON m.repository_id = r.id
    LEFT JOIN decisions d ON d.manifest_id = m.id AND d.policy_version = ${policyVersion}
    WHERE r.registry_id = ${registryId} AND m.first_seen_at >= date_trunc('day', now(), 'UTC') - make_interval(days => ${days - 1})
    GROUP BY 1 ORDER BY 1`.execute(db);
  return rows.map((r) => ({ day: r.day, allowed: Number(r.allowed), denied: Number(r.denied), undecided: Number(r.undecided) }));
}
