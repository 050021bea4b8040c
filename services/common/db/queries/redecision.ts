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

/** One image of a pass: its name, and whether it already has a counted decision under the target and under the base version. */
export interface PassImage {
  readonly id: string;
  readonly registry: string;
  readonly repository: string;
  readonly current: boolean;
  readonly baseCurrent: boolean;
}

/** A decision of `d` that counts (see {@link passPage}) for the image `m`, under `c`. */
function counts(d: string, c: Counted, now: Date) {
  const ref = (column: string) => sql.ref(`${d}.${column}`);
  return sql<boolean>`${ref('policy_version')} = ${c.version} AND ${ref('decided_at')} >= ${c.decidedFrom}
    AND ${ref('verified_at')} > m.indexed_at - interval '1 millisecond' AND (${ref('expires_at')} IS NULL OR ${ref('expires_at')} > ${now})`;
}

/**
 * The next page of images (by id, after `after`) for a pass deciding under `target`, carrying
 * over from `base`. A decision counts when it is under the version, made by this Signet version
 * (at or after `decidedFrom`), from the image's facts as they are (verified no earlier than the
 * manifest was last indexed, to the millisecond a JavaScript date keeps) and not expired at `now`.
 */
export async function passPage(db: Kysely<DB>, target: Counted, base: Counted | null, after: string, limit: number, now: Date): Promise<PassImage[]> {
  const baseJoin = base === null ? sql`` : sql`LEFT JOIN decisions b ON b.manifest_id = m.id AND ${counts('b', base, now)}`;
  const result = await sql<PassImage>`
    SELECT m.id::text AS id, g.host AS registry, r.name AS repository, p.manifest_id IS NOT NULL AS current,
           ${base === null ? sql`false` : sql`b.manifest_id IS NOT NULL`} AS "baseCurrent"
    FROM manifests m JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
    LEFT JOIN decisions p ON p.manifest_id = m.id AND ${counts('p', target, now)}
    ${baseJoin}
    WHERE m.id > ${after}
    ORDER BY m.id
    LIMIT ${limit}`.execute(db);
  return result.rows;
}

/**
 * Copies the decisions of `ids` that count under `from` to `to` (the policy version aside, the
 * same decision: the edit did not touch these images), replacing a row of `to` that does not
 * count. Returns the ids copied; the others (facts changed meanwhile) are to be decided.
 */
export async function carryOver(db: Kysely<DB>, from: Counted, to: string, ids: readonly string[], now: Date): Promise<Set<string>> {
  if (ids.length === 0) {
    return new Set();
  }
  const result = await sql<{ manifest_id: string }>`
    INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, rule, mode, scoped, attestations, expires_at, verified_at, decided_at)
    SELECT d.manifest_id, ${to}, d.allowed, d.reason, d.message, d.signers, d.rule, d.mode, d.scoped, d.attestations, d.expires_at, d.verified_at, ${now}
    FROM decisions d JOIN manifests m ON m.id = d.manifest_id
    WHERE d.manifest_id = ANY(${sql.val(ids)}::bigint[]) AND ${counts('d', from, now)}
    ON CONFLICT (manifest_id, policy_version) DO UPDATE SET
      allowed = excluded.allowed, reason = excluded.reason, message = excluded.message, signers = excluded.signers, rule = excluded.rule,
      mode = excluded.mode, scoped = excluded.scoped, attestations = excluded.attestations, expires_at = excluded.expires_at,
      verified_at = excluded.verified_at, decided_at = excluded.decided_at
    RETURNING manifest_id`.execute(db);
  return new Set(result.rows.map((r) => String(r.manifest_id)));
}

/** Images in the ledger (what a pass goes over). */
export async function countImages(db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
