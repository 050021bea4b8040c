import { sql, type Kysely, type Transaction } from 'kysely';
import type { DB } from '../schema.generated.ts';
import { statementTemplate } from '../template.ts';
import { bytewise, page, prefixPattern, withRegistry, type Page } from './fragments.ts';

// Repositories (and the registries they belong to): locking for writes, lookups for reads.

export interface Repository {
  readonly id: string;
  readonly registry: string;
  readonly name: string;
  readonly firstSeenAt: Date;
}

/** The repository's lock taken, and its id if it is known (one statement, built once). */
const lockedKnownId = statementTemplate((db: Kysely<DB>, key: string, registry: string, repository: string) =>
  db.selectNoFrom((eb) => [
    sql<unknown>`pg_advisory_xact_lock(hashtextextended(${key}, 0))`.as('locked'),
    eb
      .selectFrom('repositories as r')
      .$call(withRegistry)
      .select('r.id')
      .where('g.host', '=', registry)
      .where('r.name', '=', repository)
      .as('id'),
  ]),
);

/**
 * Serialises ledger writes for one repository until the transaction ends, and returns its id,
 * creating the registry and repository rows on first sight. Jobs for the same image (its push and
 * its signature pushes) and tag updates from concurrent deliveries then see each other's rows
 * instead of racing. A repository seen before (every push but its first) costs one statement for
 * both, not five.
 */
export async function lockAndEnsure(trx: Transaction<DB>, registry: string, repository: string): Promise<string> {
  const [row] = await lockedKnownId(trx, `${registry}/${repository}`, registry, repository);
  return row?.id ?? create(trx, registry, repository);
}

async function create(trx: Transaction<DB>, registry: string, repository: string): Promise<string> {
  await trx.insertInto('registries').values({ host: registry }).onConflict((oc) => oc.column('host').doNothing()).execute();
  const { id: registryId } = await trx
    .selectFrom('registries')
    .select('id')
    .where('host', '=', registry)
    .executeTakeFirstOrThrow();
  await trx
    .insertInto('repositories')
    .values({ registry_id: registryId, name: repository })
    .onConflict((oc) => oc.columns(['registry_id', 'name']).doNothing())
    .execute();
  const { id } = await trx
    .selectFrom('repositories')
    .select('id')
    .where('registry_id', '=', registryId)
    .where('name', '=', repository)
    .executeTakeFirstOrThrow();
  return id;
}

function selectRepositories(db: Kysely<DB>) {
  return db.selectFrom('repositories as r').$call(withRegistry).select(['r.id', 'g.host as registry', 'r.name', 'r.first_seen_at as firstSeenAt']);
}

export function byIds(db: Kysely<DB>, ids: readonly string[]): Promise<Repository[]> {
  return selectRepositories(db).where('r.id', 'in', ids).execute();
}

export async function find(db: Kysely<DB>, registry: string, name: string): Promise<Repository | null> {
  const row = await selectRepositories(db).where('g.host', '=', registry).where('r.name', '=', name).executeTakeFirst();
  return row ?? null;
}

/** Ids of the repositories in a registry and/or with a name (null: any), as a subquery. */
export function idsIn(db: Kysely<DB>, registry: string | null, name: string | null) {
  let q = db.selectFrom('repositories as r').$call(withRegistry).select('r.id');
  if (registry !== null) {
    q = q.where('g.host', '=', registry);
  }
  if (name !== null) {
    q = q.where('r.name', '=', name);
  }
  return q;
}

function matching(db: Kysely<DB>, registry: string | null, search: string | null) {
  let q = db.selectFrom('repositories as r').$call(withRegistry);
  if (registry !== null) {
    q = q.where('g.host', '=', registry);
  }
  return search === null ? q : q.where(bytewise('r.name'), 'like', prefixPattern(search));
}

/**
 * Repositories by name in byte order, in one registry or across all, optionally those whose name
 * starts with `search`: a keyset page (after the repository `after`) over the `name COLLATE "C"` indexes.
 */
export async function pageRepositories(db: Kysely<DB>, registry: string | null, search: string | null, first: number, after: string | null): Promise<Page<Repository>> {
  let q = matching(db, registry, search)
    .select(['r.id', 'g.host as registry', 'r.name', 'r.first_seen_at as firstSeenAt'])
    .orderBy(bytewise('r.name'))
    .orderBy('r.id')
    .limit(first + 1);
  if (after !== null) {
    q = q.where(sql<boolean>`(r.name COLLATE "C", r.id) > (SELECT name COLLATE "C", id FROM repositories WHERE id = ${after})`);
  }
  return page(await q.execute(), first);
}

export async function countRepositories(db: Kysely<DB>, registry: string | null, search: string | null): Promise<number> {
  const row = await matching(db, registry, search).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
