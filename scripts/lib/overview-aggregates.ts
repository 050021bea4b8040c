// The registry overview as aggregates over the whole ledger: the queries `Registry.summary`,
// `topSigners` and `outcomes` ran before the registry tallies (migrations/…_registry_tallies.sql).
// Kept as the yardstick the tallies must equal (test/integration/registry-tallies.test.ts) and
// the cost they removed (scripts/bench-overview.ts). Each scans every image of the registry.
import { sql, type Kysely } from 'kysely';
import type { OutcomeDay, RegistrySummary } from '../../services/common/db/queries/registries.ts';
import type { DB } from '../../services/common/db/schema.generated.ts';

export async function aggregateSummary(db: Kysely<DB>, registryId: string, policyVersion: string): Promise<RegistrySummary> {
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

export async function aggregateTopSigners(db: Kysely<DB>, registryId: string, first: number): Promise<{ identityId: string; images: number }[]> {
  const { rows } = await sql<{ identityId: string; images: string }>`
    SELECT s.identity_id AS "identityId", count(DISTINCT s.manifest_id) AS images
    FROM signatures s
    JOIN manifests m ON m.id = s.manifest_id
    JOIN repositories r ON r.id = m.repository_id
    WHERE r.registry_id = ${registryId} AND s.identity_id IS NOT NULL AND s.withdrawn_at IS NULL
    GROUP BY s.identity_id
    ORDER BY images DESC, s.identity_id
    LIMIT ${first}`.execute(db);
  return rows.map((r) => ({ identityId: r.identityId, images: Number(r.images) }));
}

export async function aggregateOutcomes(db: Kysely<DB>, registryId: string, policyVersion: string, days: number): Promise<OutcomeDay[]> {
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
