import { sql, type Kysely, type RawBuilder } from 'kysely';
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

/** The version whose decisions `policyVersion` still reads for the images it has none of (policies.base_version), if any. */
export async function baseOf(db: Kysely<DB>, policyVersion: string): Promise<string | null> {
  const row = await db.selectFrom('policies').select('base_version').where('version', '=', policyVersion).executeTakeFirst();
  return row?.base_version ?? null;
}

/**
 * Sets or clears the version whose decisions `version` reads for the images it has none of (see
 * the policy_base_version migration): set when a pass completes with untouched decisions left
 * where they are, cleared once they are carried over.
 */
export async function setBase(db: Kysely<DB>, version: string, base: string | null): Promise<void> {
  await db.updateTable('policies').set({ base_version: base }).where('version', '=', version).execute();
}

/**
 * No longer complete: a pass is about to bring it up to date (its decisions may be behind: another
 * version was in force since it was complete). API replicas wait for the pass before switching to it.
 */
export async function markIncomplete(db: Kysely<DB>, version: string): Promise<void> {
  await db.updateTable('policies').set({ complete_at: null }).where('version', '=', version).execute();
}

/** Notes that a pass works under `version` now (see retiredVersions and pruneRange). */
export async function markActive(db: Kysely<DB>, version: string): Promise<void> {
  await db.updateTable('policies').set({ active_at: sql`now()` }).where('version', '=', version).execute();
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

/** A policy version as recorded, if it is and some Signet version decided under it (what a pass carries from). */
export async function policyRow(db: Kysely<DB>, version: string): Promise<(Counted & { readonly source: string }) | null> {
  const row = await db.selectFrom('policies').select(['version', 'source', 'decided_from']).where('version', '=', version).executeTakeFirst();
  return row === undefined || row.decided_from === null ? null : { version: row.version, source: row.source, decidedFrom: row.decided_from };
}

/**
 * Brings the planner's statistics of `decisions` up to date (a sample: ~1 s at 10M rows). A pass
 * writes a version's decisions faster than autovacuum analyses them; until it does, the planner
 * takes the new version for a rare one, and lookups of one image under it (API misses, GraphQL)
 * walk the version's whole index instead of the primary key.
 */
export async function analyzeDecisions(db: Kysely<DB>): Promise<void> {
  await sql`ANALYZE decisions`.execute(db);
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

/** The repositories of the given registries (by host), with their registry: what a policy edit's patterns are matched against. */
export async function repositories(db: Kysely<DB>, registries: readonly string[]): Promise<{ id: string; registry: string; name: string }[]> {
  if (registries.length === 0) {
    return [];
  }
  return await db
    .selectFrom('repositories as r')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['r.id', 'g.host as registry', 'r.name'])
    .where('g.host', 'in', registries)
    .execute();
}

/** How many repositories the ledger holds. */
export async function countRepositories(db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('repositories').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The highest image id (0 for an empty ledger): how far a pass goes. */
export async function maxImageId(db: Kysely<DB>): Promise<string> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
  return row?.id === null || row?.id === undefined ? '0' : String(row.id);
}

/** The images with an id in (lo, hi], in id order: what a pass reads of them. */
export async function imagesInRange(db: Kysely<DB>, lo: string, hi: string): Promise<{ id: string; repositoryId: string; indexedAt: Date }[]> {
  return await db
    .selectFrom('manifests')
    .select(['id', 'repository_id as repositoryId', 'indexed_at as indexedAt'])
    .where('id', '>', lo)
    .where('id', '<=', hi)
    .orderBy('id')
    .execute();
}

/** The images of the given repositories, in id order (what an edit that touched them decides first). */
export async function imagesInRepositories(db: Kysely<DB>, repositoryIds: readonly string[]): Promise<{ id: string; indexedAt: Date }[]> {
  const result = await sql<{ id: string; indexedAt: Date }>`
    SELECT id::text AS id, indexed_at AS "indexedAt" FROM manifests WHERE repository_id = ANY(${sql.val(repositoryIds)}::bigint[]) ORDER BY id`.execute(db);
  return result.rows;
}

/** What tells whether a stored decision counts (see {@link decisionsInRange}). */
export interface DecisionStamp {
  readonly manifestId: string;
  readonly decidedAt: Date;
  readonly verifiedAt: Date;
  readonly expiresAt: Date | null;
}

/**
 * The decisions under `version` of the images with an id in (lo, hi].
 *
 * Every query of a pass reads decisions by a range (or a list) of image ids, the primary key's
 * leading column, and compares the policy version as an expression (`|| ''`) that no index on
 * `policy_version` can serve. Those indexes are the planner's pick when its statistics say the
 * version is rare — true of the version a pass writes, when the pass begins — and each query then
 * reads every row of the version so far: passes over 495,000 images slowed down quadratically,
 * the plan changing with the statistics. By id, a query reads its range whatever they say.
 */
export async function decisionsInRange(db: Kysely<DB>, version: string, lo: string, hi: string): Promise<DecisionStamp[]> {
  return stamps(db, version, sql`manifest_id > ${lo} AND manifest_id <= ${hi}`);
}

/** The decisions under `version` of the given images (by the primary key, like {@link decisionsInRange}). */
export async function decisionsOf(db: Kysely<DB>, version: string, manifestIds: readonly string[]): Promise<DecisionStamp[]> {
  return stamps(db, version, sql`manifest_id = ANY(${sql.val(manifestIds)}::bigint[])`);
}

/** The stamps of the decisions under `version` of the images `byId` selects (the version compared as an expression). */
async function stamps(db: Kysely<DB>, version: string, byId: RawBuilder<unknown>): Promise<DecisionStamp[]> {
  const result = await sql<DecisionStamp>`
    SELECT manifest_id::text AS "manifestId", decided_at AS "decidedAt", verified_at AS "verifiedAt", expires_at AS "expiresAt"
    FROM decisions WHERE ${byId} AND policy_version || '' = ${version}`.execute(db);
  return result.rows;
}

/**
 * Whether a stored decision counts under `c` for an image last indexed at `indexedAt`: made by
 * this Signet version (at or after `decidedFrom`), from the image's facts as they are (verified
 * no earlier than the manifest was last indexed, to the millisecond a JavaScript date keeps), and
 * not expired at `now`. {@link carryOver} checks the same in SQL.
 */
export function counts(d: DecisionStamp | undefined, c: Counted, indexedAt: Date, now: Date): boolean {
  return (
    d !== undefined &&
    d.decidedAt.getTime() >= c.decidedFrom.getTime() &&
    d.verifiedAt.getTime() >= indexedAt.getTime() &&
    (d.expiresAt === null || d.expiresAt.getTime() > now.getTime())
  );
}

/**
 * Copies to `to` the decisions under `from` of the images with an id in (lo, hi] but `except`
 * that still count (the facts may have changed since they were read: those are left, to be
 * decided), replacing a row of `to` that does not count (the policy version aside, the same
 * decision: the edit did not touch these images). An image with a decision that counts under `to`
 * keeps it: one indexed after the range was read, which `except` cannot name, was decided under
 * both versions at once (Decider.decideManifests during a pass). Returns the ids copied. By range
 * (the primary key's order) with the few left out hashed (`= ANY`), rather than by a list of the
 * many copied: half the time.
 */
export async function carryOver(db: Kysely<DB>, from: Counted, to: Counted, lo: string, hi: string, except: readonly string[], now: Date): Promise<Set<string>> {
  const result = await sql<{ id: string }>`
    INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, rule, mode, scoped, attestations, expires_at, verified_at, decided_at)
    SELECT b.manifest_id, ${to.version}, b.allowed, b.reason, b.message, b.signers, b.rule, b.mode, b.scoped, b.attestations, b.expires_at, b.verified_at, ${now}
    FROM decisions b JOIN manifests m ON m.id = b.manifest_id
    WHERE b.manifest_id > ${lo} AND b.manifest_id <= ${hi} AND b.policy_version || '' = ${from.version}
      ${except.length === 0 ? sql`` : sql`AND NOT (b.manifest_id = ANY(${sql.val(except)}::bigint[]))`}
      AND b.decided_at >= ${from.decidedFrom} AND b.verified_at > m.indexed_at - interval '1 millisecond'
      AND (b.expires_at IS NULL OR b.expires_at > ${now})
      AND NOT EXISTS (
        SELECT 1 FROM decisions p
        WHERE p.manifest_id = b.manifest_id AND p.manifest_id > ${lo} AND p.manifest_id <= ${hi} AND p.policy_version || '' = ${to.version}
          AND p.decided_at >= ${to.decidedFrom} AND p.verified_at > m.indexed_at - interval '1 millisecond' AND (p.expires_at IS NULL OR p.expires_at > ${now}))
    ON CONFLICT (manifest_id, policy_version) DO UPDATE SET
      allowed = excluded.allowed, reason = excluded.reason, message = excluded.message, signers = excluded.signers, rule = excluded.rule,
      mode = excluded.mode, scoped = excluded.scoped, attestations = excluded.attestations, expires_at = excluded.expires_at,
      verified_at = excluded.verified_at, decided_at = excluded.decided_at
    RETURNING manifest_id::text AS id`.execute(db);
  return new Set(result.rows.map((r) => r.id));
}

/** Images in the ledger (what a pass goes over). */
export async function countImages(db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('manifests').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Whether policy version `p` is retired more than `retentionMs` ago: another version was decided
 * in full after `p` was last in use — after its own completion, its pass's last progress
 * (`active_at`: a pass stopped by a newer policy, or a rollback's pass), its claim or its first
 * load, whichever is latest — and that long ago. The version completed last is never retired (API
 * replicas answer under it), nor is a version a pass works under, unless another completed since,
 * nor a version another still reads through (its base_version).
 */
function retired(retentionMs: number) {
  return sql<boolean>`(SELECT min(n.complete_at) FROM policies n
                       WHERE n.complete_at > greatest(p.complete_at, p.active_at, p.decided_from, p.loaded_at)) < now() - make_interval(secs => ${retentionMs / 1000})
                      AND NOT EXISTS (SELECT 1 FROM policies c WHERE c.base_version = p.version AND c.version <> p.version)`;
}

/** The policy versions retired more than `retentionMs` ago that still hold decisions, oldest first. */
export async function retiredVersions(db: Kysely<DB>, retentionMs: number): Promise<string[]> {
  const rows = await sql<{ version: string }>`
    SELECT p.version FROM policies p
    WHERE ${retired(retentionMs)} AND EXISTS (SELECT 1 FROM decisions d WHERE d.policy_version = p.version)
    ORDER BY p.loaded_at`.execute(db);
  return rows.rows.map((r) => r.version);
}

/**
 * Deletes `version`'s decisions of the images with an id in (lo, hi] if the version is still
 * retired (checked under its row's lock: a pass that starts working under it meanwhile, a
 * rollback, stops the prune), marking it incomplete first so that nothing takes its remaining
 * rows for a full set (and no longer reading through a base of its own). Resolves to the rows deleted, or null when the version is no longer
 * retired. By id range through the primary key, like the pass (redecision.ts): a `LIMIT` on the
 * version's index would read every row deleted before it again, dead until vacuumed.
 */
export async function pruneRange(db: Kysely<DB>, version: string, retentionMs: number, lo: string, hi: string): Promise<number | null> {
  return db.transaction().execute(async (trx) => {
    const still = await sql<{ version: string }>`
      UPDATE policies p SET complete_at = NULL, base_version = NULL WHERE p.version = ${version} AND ${retired(retentionMs)} RETURNING p.version`.execute(trx);
    if (still.rows.length === 0) {
      return null;
    }
    const deleted = await sql`
      DELETE FROM decisions WHERE manifest_id > ${lo} AND manifest_id <= ${hi} AND policy_version || '' = ${version}`.execute(trx);
    return Number(deleted.numAffectedRows ?? 0n);
  });
}

/** What a prune pass did. `complete`: it was not stopped before the end. */
export interface PruneResult {
  readonly deleted: number;
  readonly versions: number;
  readonly statements: number;
  readonly complete: boolean;
}

/**
 * Deletes the decisions of every policy version retired more than `retentionMs` ago, `range`
 * image ids per transaction ({@link pruneRange}); a version that comes back into use meanwhile is
 * left with what it still holds. Stops between two ranges once `stopped()` says so.
 */
export async function pruneRetired(db: Kysely<DB>, retentionMs: number, range: bigint, stopped: () => boolean = () => false): Promise<PruneResult> {
  let deleted = 0;
  let versions = 0;
  let statements = 0;
  const versionsRetired = await retiredVersions(db, retentionMs);
  // Images added since are decided under the version in use, never under a retired one.
  const end = versionsRetired.length === 0 ? 0n : BigInt(await maxImageId(db));
  for (const version of versionsRetired) {
    for (let lo = 0n; lo < end; lo += range) {
      if (stopped()) {
        return { deleted, versions, statements, complete: false };
      }
      const n = await pruneRange(db, version, retentionMs, String(lo), String(lo + range));
      statements += 1;
      if (n === null) {
        break;
      }
      deleted += n;
    }
    versions += 1;
  }
  return { deleted, versions, statements, complete: true };
}
