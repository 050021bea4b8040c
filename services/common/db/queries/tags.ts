import { sql, type Kysely, type Transaction } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { DB } from '../schema.generated.ts';
import { page, withRegistry, type Page } from './fragments.ts';
import * as repositories from './repositories.ts';

// Tags as the registry last reported them, and every move of a tag (tag_history).

export interface Tag {
  readonly repositoryId: string;
  readonly name: string;
  readonly digest: Digest;
  readonly updatedAt: Date;
}

export interface TagMove {
  readonly id: string;
  readonly repositoryId: string;
  readonly name: string;
  readonly digest: Digest;
  readonly previousDigest: Digest | null;
  readonly seenAt: Date;
}

/**
 * Records that the registry answered `digest` for `tag` at `observedAt` (taken as now when later).
 * A change of target is a tag-history row; an answer older than the current state's (a slower
 * observer) is recorded in the history but does not move the tag back; the same target again only
 * makes the current state newer. A current state stamped in the future (earlier versions recorded
 * a sender's clock) is older than any answer. Call with the repository locked.
 */
export async function recordPush(
  trx: Transaction<DB>,
  repositoryId: string,
  tag: string,
  digest: Digest,
  observedAt: Date,
): Promise<'created' | 'moved' | 'unchanged' | 'late'> {
  const now = new Date();
  const at = observedAt > now ? now : observedAt;
  const current = await trx
    .selectFrom('tags')
    .select(['digest', 'updated_at'])
    .where('repository_id', '=', repositoryId)
    .where('name', '=', tag)
    .executeTakeFirst();
  if (current?.digest === digest) {
    if (current.updated_at < at || current.updated_at > now) {
      await trx.updateTable('tags').set({ updated_at: at }).where('repository_id', '=', repositoryId).where('name', '=', tag).execute();
    }
    return 'unchanged';
  }
  if (current !== undefined && at < current.updated_at && current.updated_at <= now) {
    await trx
      .insertInto('tag_history')
      .values({ repository_id: repositoryId, name: tag, digest, previous_digest: null, seen_at: at })
      .execute();
    return 'late';
  }
  await trx
    .insertInto('tags')
    .values({ repository_id: repositoryId, name: tag, digest, updated_at: at })
    .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ digest, updated_at: at }))
    .execute();
  await trx
    .insertInto('tag_history')
    .values({ repository_id: repositoryId, name: tag, digest, previous_digest: current?.digest ?? null, seen_at: at })
    .execute();
  return current === undefined ? 'created' : 'moved';
}

/** {@link recordPush} in a transaction of its own, under the repository lock. */
export async function record(db: Kysely<DB>, registry: string, repository: string, tag: string, digest: Digest, at: Date) {
  return db.transaction().execute(async (trx) => {
    return recordPush(trx, await repositories.lockAndEnsure(trx, registry, repository), tag, digest, at);
  });
}

function selectTags(db: Kysely<DB>) {
  return db.selectFrom('repositories as r').$call(withRegistry).innerJoin('tags as t', 't.repository_id', 'r.id');
}

/** Current tag → digest, from the ledger (never the registry). */
export async function find(db: Kysely<DB>, registry: string, repository: string, tag: string): Promise<Digest | null> {
  const row = await selectTags(db).select('t.digest').where('g.host', '=', registry).where('r.name', '=', repository).where('t.name', '=', tag).executeTakeFirst();
  return row?.digest ?? null;
}

/** When the `n`th most recently updated tag was updated (where a bounded load starts), or null when there are fewer. */
export async function recentCutoff(db: Kysely<DB>, n: number): Promise<Date | null> {
  const row = await db.selectFrom('tags').select('updated_at').orderBy('updated_at', 'desc').offset(n - 1).limit(1).executeTakeFirst();
  return row?.updated_at ?? null;
}

/** Where a page of {@link listRecentPage} ended: the last tag's update time (as Postgres's text, microseconds kept), repository and name. */
export interface TagPosition {
  readonly updatedAt: string;
  readonly repositoryId: string;
  readonly name: string;
}

/**
 * Current tags updated since `since` (every tag when null), least recently updated first, a page
 * after `after` at a time (warm-loading the in-memory table: read through the updated_at index,
 * never the whole table in one result).
 */
export async function listRecentPage(
  db: Kysely<DB>,
  since: Date | null,
  after: TagPosition | null,
  limit: number,
): Promise<{ registry: string; repository: string; tag: string; digest: Digest; position: TagPosition }[]> {
  let query = selectTags(db).select(['g.host as registry', 'r.name as repository', 't.name as tag', 't.digest', sql<string>`t.updated_at::text`.as('updated_at'), 't.repository_id']);
  if (since !== null) {
    query = query.where('t.updated_at', '>=', since);
  }
  if (after !== null) {
    query = query.where(sql<boolean>`(t.updated_at, t.repository_id, t.name) > (${after.updatedAt}::timestamptz, ${after.repositoryId}::bigint, ${after.name})`);
  }
  const rows = await query.orderBy('t.updated_at').orderBy('t.repository_id').orderBy('t.name').limit(limit).execute();
  return rows.map(({ updated_at, repository_id, ...row }) => ({ ...row, position: { updatedAt: updated_at, repositoryId: repository_id, name: row.tag } }));
}

export function byRepositoryId(db: Kysely<DB>, repositoryId: string): Promise<Tag[]> {
  return db
    .selectFrom('tags')
    .select(['repository_id as repositoryId', 'name', 'digest', 'updated_at as updatedAt'])
    .where('repository_id', '=', repositoryId)
    .orderBy('name')
    .execute();
}

/** Current tags naming each image. */
export function namesByImageIds(db: Kysely<DB>, imageIds: readonly string[]): Promise<{ imageId: string; name: string }[]> {
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.digest'))
    .select(['m.id as imageId', 't.name'])
    .where('m.id', 'in', imageIds)
    .orderBy('t.name')
    .execute();
}

function selectMoves(db: Kysely<DB>, repositoryId: string, tag: string | null) {
  let q = db.selectFrom('tag_history').where('repository_id', '=', repositoryId);
  if (tag !== null) {
    q = q.where('name', '=', tag);
  }
  return q;
}

/** Moves of a repository's tags (or of one tag), newest first. */
export async function pageMoves(db: Kysely<DB>, repositoryId: string, tag: string | null, first: number, after: string | null): Promise<Page<TagMove>> {
  let q = selectMoves(db, repositoryId, tag)
    .select(['id', 'repository_id as repositoryId', 'name', 'digest', 'previous_digest as previousDigest', 'seen_at as seenAt'])
    .orderBy('id', 'desc')
    .limit(first + 1);
  if (after !== null) {
    q = q.where('id', '<', after);
  }
  return page(await q.execute(), first);
}

export async function countMoves(db: Kysely<DB>, repositoryId: string, tag: string | null): Promise<number> {
  const row = await selectMoves(db, repositoryId, tag).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Where `tag` pointed at `at`: its last move seen at or before then (tag_history_tag_idx, read backwards), or null. */
export async function moveAt(db: Kysely<DB>, repositoryId: string, tag: string, at: Date): Promise<TagMove | null> {
  const row = await db
    .selectFrom('tag_history')
    .select(['id', 'repository_id as repositoryId', 'name', 'digest', 'previous_digest as previousDigest', 'seen_at as seenAt'])
    .where('repository_id', '=', repositoryId)
    .where('name', '=', tag)
    .where('seen_at', '<=', at)
    .orderBy('seen_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ?? null;
}
