import { sql, type Kysely } from 'kysely';
import type { DB } from '../schema.generated.ts';

// The worker's pass over the ledger under a policy version (core/decider.ts): which decisions
// count, which policy version is decided in full, and carrying unchanged decisions over from one
// version to the next. See the policies columns' migration (policy_completion) for the model.

/** A policy version and the moment from which decisions under it count (made by this Signet version). */
export interface Counted {
  readonly version: string;
  readonly decidedFrom: Date;
}

/** A policy version decided in full, with the text it was parsed from. */
export interface CompletePolicy extends Counted {
  readonly source: string;
  readonly completeAt: Date;
}

/**
 * Makes `version` this Signet version's (`decidedBy`): recorded if new; claimed anew (decisions
 * made until now no longer count, not complete) when another Signet version decided under it.
 * Returns from when decisions count, and when the ledger was last decided in full under it.
 */
export async function claimPolicy(db: Kysely<DB>, version: string, source: string, decidedBy: string, now = new Date()): Promise<Counted & { completeAt: Date | null }> {
  await db
    .insertInto('policies')
    .values({ version, source, decided_by: decidedBy, decided_from: now })
    .onConflict((oc) => oc.column('version').doNothing())
    .execute();
  await db
    .updateTable('policies')
    .set({ decided_by: decidedBy, decided_from: now, complete_at: null })
    .where('version', '=', version)
    .where((eb) => eb.or([eb('decided_by', 'is', null), eb('decided_by', '!=', decidedBy), eb('decided_from', 'is', null)]))
    .execute();
  const row = await db.selectFrom('policies').select(['decided_from', 'complete_at']).where('version', '=', version).executeTakeFirstOrThrow();
  return { version, decidedFrom: row.decided_from ?? now, completeAt: row.complete_at };
}

/**
 * No longer complete: a pass is about to bring it up to date (its decisions may be behind: another
 * version was in force since it was complete). API replicas wait for the pass before switching to it.
 */
export async function markIncomplete(db: Kysely<DB>, version: string): Promise<void> {
  await db.updateTable('policies').set({ complete_at: null }).where('version', '=', version).execute();
}

/** The policy version other than `except` most recently decided in full by `decidedBy`, if any. */
export async function lastComplete(db: Kysely<DB>, decidedBy: string, except: string): Promise<CompletePolicy | null> {
  const row = await db
    .selectFrom('policies')
    .select(['version', 'source', 'decided_from', 'complete_at'])
    .where('complete_at', 'is not', null)
    .where('decided_by', '=', decidedBy)
    .where('decided_from', 'is not', null)
    .where('version', '!=', except)
    .orderBy('complete_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : { version: row.version, source: row.source, decidedFrom: row.decided_from!, completeAt: row.complete_at! };
}

/** Records that every image has a counted decision under `version` (unless another Signet version claimed it meanwhile). */
export async function markComplete(db: Kysely<DB>, version: string, decidedBy: string): Promise<boolean> {
  const r = await db.updateTable('policies').set({ complete_at: new Date() }).where('version', '=', version).where('decided_by', '=', decidedBy).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Whether the ledger is decided in full under `version` (what an API replica waits for before switching to it). */
export async function isComplete(db: Kysely<DB>, version: string): Promise<boolean> {
  const row = await db.selectFrom('policies').select('complete_at').where('version', '=', version).executeTakeFirst();
  return row !== undefined && row.complete_at !== null;
}

/**
 * A decision of `d` that counts (see {@link undecidedPage}) for the image `m`, under `c`.
 *
 * Every query of a pass reads decisions by a range of image ids (the primary key's leading
 * column), never by policy version: the version is compared as an expression (`|| ''`), which no
 * index on `policy_version` can serve. Those indexes are the planner's pick when its statistics
 * say the version is rare — true of the version a pass writes, when the pass begins — and then
 * each query reads every row of the version so far: a pass over 495,000 images slowed down
 * quadratically. By id ranges, whatever the statistics, a query reads its range.
 */
function counts(d: string, c: Counted, now: Date) {
  const ref = (column: string) => sql.ref(`${d}.${column}`);
  return sql<boolean>`${ref('policy_version')} || '' = ${c.version} AND ${ref('decided_at')} >= ${c.decidedFrom}
    AND ${ref('verified_at')} > m.indexed_at - interval '1 millisecond' AND (${ref('expires_at')} IS NULL OR ${ref('expires_at')} > ${now})`;
}

/** Every repository with its registry: what a policy edit's patterns are matched against. */
export async function repositories(db: Kysely<DB>): Promise<{ id: string; registry: string; name: string }[]> {
  return await db.selectFrom('repositories as r').innerJoin('registries as g', 'g.id', 'r.registry_id').select(['r.id', 'g.host as registry', 'r.name']).execute();
}

/** The highest image id (0 for an empty ledger): how far a pass goes. */
export async function maxImageId(db: Kysely<DB>): Promise<string> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
  return row?.id === null || row?.id === undefined ? '0' : String(row.id);
}

/**
 * Copies to `to` the decisions that count under `from` of the images with an id in (lo, hi] that
 * are not in one of `touched` repositories and have no decision that counts under `to` (the
 * policy version aside, the same decision: the edit did not touch these images), replacing a row
 * of `to` that does not count. Returns how many were copied. One statement: images whose facts
 * changed since their decision under `from` are left, to be decided. The id range is repeated on
 * each side of the joins: Postgres does not carry a range across `m.id = manifest_id`, and a merge
 * join would otherwise read the decisions index from its start each time. `touched` is tested as
 * `= ANY(array)`, which Postgres (14 and later) hashes: 0.3 s per range with 99,000 repositories
 * where joining `unnest(array)` took 26 s (planned as a nested loop).
 */
export async function carryOver(db: Kysely<DB>, from: Counted, to: Counted, touched: readonly string[], lo: string, hi: string, now: Date): Promise<number> {
  const result = await sql`
    INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, rule, mode, scoped, attestations, expires_at, verified_at, decided_at)
    SELECT b.manifest_id, ${to.version}, b.allowed, b.reason, b.message, b.signers, b.rule, b.mode, b.scoped, b.attestations, b.expires_at, b.verified_at, ${now}
    FROM manifests m
    JOIN decisions b ON b.manifest_id = m.id AND b.manifest_id > ${lo} AND b.manifest_id <= ${hi} AND ${counts('b', from, now)}
    WHERE m.id > ${lo} AND m.id <= ${hi} ${touched.length === 0 ? sql`` : sql`AND NOT (m.repository_id = ANY(${sql.val(touched)}::bigint[]))`}
      AND NOT EXISTS (SELECT 1 FROM decisions p WHERE p.manifest_id = m.id AND p.manifest_id > ${lo} AND p.manifest_id <= ${hi} AND ${counts('p', to, now)})
    ON CONFLICT (manifest_id, policy_version) DO UPDATE SET
      allowed = excluded.allowed, reason = excluded.reason, message = excluded.message, signers = excluded.signers, rule = excluded.rule,
      mode = excluded.mode, scoped = excluded.scoped, attestations = excluded.attestations, expires_at = excluded.expires_at,
      verified_at = excluded.verified_at, decided_at = excluded.decided_at`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Up to `limit` images with an id in (after, hi] (no upper bound when `hi` is null), in id order,
 * without a decision that counts under `target`: under it, made by this Signet version (at or
 * after `decidedFrom`), from the image's facts as they are (verified no earlier than the manifest
 * was last indexed, to the millisecond a JavaScript date keeps), and not expired at `now`.
 */
export async function undecidedPage(db: Kysely<DB>, target: Counted, after: string, hi: string | null, limit: number, now: Date): Promise<string[]> {
  const upTo = (column: string) => (hi === null ? sql`` : sql`AND ${sql.ref(column)} <= ${hi}`);
  const result = await sql<{ id: string }>`
    SELECT m.id::text AS id FROM manifests m
    WHERE m.id > ${after} ${upTo('m.id')}
      AND NOT EXISTS (SELECT 1 FROM decisions p WHERE p.manifest_id = m.id AND p.manifest_id > ${after} ${upTo('p.manifest_id')} AND ${counts('p', target, now)})
    ORDER BY m.id
    LIMIT ${limit}`.execute(db);
  return result.rows.map((r) => r.id);
}

/** Images in the ledger (what a pass goes over). */
export async function countImages(db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
