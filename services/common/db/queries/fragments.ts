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
