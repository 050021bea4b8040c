import type { SelectQueryBuilder } from 'kysely';
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

