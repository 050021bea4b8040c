import { sql, type SelectQueryBuilder } from 'kysely';
import type { DB, Manifests, Repositories } from '../schema.generated.ts';

// Query pieces the aggregate modules share. Aliases are fixed across them: `m` manifests,
// `r` repositories, `g` registries, `s` signatures, `i` identities, `t` tags, `d` decisions,
// `o` ownership changes.

/**
 * Joins a manifest (`m`) to its repository (`r`) and registry (`g`): how a row reaches the names
 * an image is known by (`g.host`, `r.name`, `m.digest`). Call it on `selectFrom('manifests as m')`,
 * then join whatever hangs off the manifest.
 */
export function withRepository<O>(qb: SelectQueryBuilder<DB & { m: Manifests }, 'm', O>) {
  return qb.innerJoin('repositories as r', 'r.id', 'm.repository_id').innerJoin('registries as g', 'g.id', 'r.registry_id');
}

/** Joins a repository (`r`) to its registry (`g`). Call it on `selectFrom('repositories as r')`. */
export function withRegistry<O>(qb: SelectQueryBuilder<DB & { r: Repositories }, 'r', O>) {
  return qb.innerJoin('registries as g', 'g.id', 'r.registry_id');
}

/** When a signature (`s`) was made: Rekor's integrated time, else a TSA's, else when Signet first saw it. */
export const signedAt = sql<Date>`coalesce(s.rekor_integrated_time, s.tsa_time, s.first_seen_at)`;

/** One page of a connection, newest first, keyed by a row id. */
export interface Page<T> {
  readonly rows: T[];
  readonly hasNextPage: boolean;
}

/** A page from the `first + 1` rows a query fetched: the extra row only says that more follow. */
export function page<T>(rows: T[], first: number): Page<T> {
  return { rows: rows.slice(0, first), hasNextPage: rows.length > first };
}

/** A `LIKE` pattern matching every string that starts with `prefix` (its `%`, `_` and `\` taken literally). */
export function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `column COLLATE "C"`: byte order, so that a prefix `LIKE` is a range over the `… COLLATE "C"` indexes whatever the database collation. */
export function bytewise(column: string) {
  return sql<string>`${sql.ref(column)} COLLATE "C"`;
}

/**
 * Whether row `d` (of `decisions as d`) is the image's decision under `policyVersion`: its row
 * under the version, or its row under the version's base (policies.base_version) when it has none
 * under the version. `byId`: compared as expressions no `policy_version` index serves (see
 * decisions.ts, selectStored). Without a base the second branch is false before it probes
 * anything (`coalesce`: a NULL would evaluate the probe).
 */
export function underVersion(policyVersion: string, byId = false) {
  const version = byId ? sql`d.policy_version || ''` : sql`d.policy_version`;
  return sql<boolean>`(${version} = ${policyVersion} OR (${version} = coalesce((SELECT p.base_version FROM policies p WHERE p.version = ${policyVersion}), '')
    AND ${notUnder(policyVersion)}))`;
}

/** Whether the image of row `d` has no row under `policyVersion` (a base's row it does not shadow). */
export function notUnder(policyVersion: string) {
  return sql<boolean>`NOT EXISTS (SELECT 1 FROM decisions x WHERE x.manifest_id = d.manifest_id AND x.policy_version = ${policyVersion})`;
}
