import { sql, type Kysely } from 'kysely';
import type { AttestationCheck, Decision, DecisionReason, ManifestFacts } from '../../domain/decision.ts';
import type { Digest } from '../../domain/digest.ts';
import type { DB } from '../schema.generated.ts';
import { notUnder, page, underVersion, withRepository, type Page } from './fragments.ts';
import * as images from './images.ts';
import { baseOf } from './redecision.ts';
import * as signatures from './signatures.ts';

// Admission decisions, one per (manifest, policy version), the policies they were made under, and
// what deciding reads.
//
// An image's decision under a policy version is its row under that version or, while the version
// has a base (policies.base_version: complete, its untouched decisions not yet carried over; see
// core/decider.ts), its row under the base. Every reader goes through {@link underVersion} or reads
// the two versions apart ({@link baseOf}); nothing follows a base's own base.

/** A manifest as the decision table keys it, with the facts the policy reads. */
export interface DecisionInput {
  readonly manifestId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly verifiedAt: Date;
  readonly facts: ManifestFacts;
}

/** A decision with the image it is about, by name. */
export interface StoredDecision extends Decision {
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly verifiedAt: Date;
}

/** A decision with the image it is about, by id. */
export interface ImageDecision extends Decision {
  readonly manifestId: string;
  readonly verifiedAt: Date;
  readonly decidedAt: Date;
}

/**
 * Reads what the policy needs for the given manifests, from stored material only: their
 * signatures, and their attestations of `predicateTypes` (what the policy's attestation
 * requirements name; none are read when it is empty).
 */
export async function loadInputs(db: Kysely<DB>, manifestIds: readonly string[], predicateTypes: readonly string[] = []): Promise<DecisionInput[]> {
  if (manifestIds.length === 0) {
    return [];
  }
  const found = await images.byIds(db, manifestIds);
  const { facts, withdrawn } = await signatures.factsByImageIds(db, manifestIds);
  const attestations = await signatures.attestationFactsByImageIds(db, manifestIds, predicateTypes);
  return found.map((m) => ({
    manifestId: m.id,
    registry: m.registry,
    repository: m.repository,
    digest: m.digest,
    verifiedAt: m.indexedAt,
    facts: {
      registry: m.registry,
      repository: m.repository,
      status: m.status,
      signatures: facts.get(m.id) ?? [],
      withdrawn: withdrawn.get(m.id) ?? 0,
      ...(predicateTypes.length === 0 ? {} : { attestations: attestations.get(m.id) ?? [] }),
    },
  }));
}

/**
 * Records a policy version the first time it decides anything; `decidedBy` (the Signet version
 * deciding) makes its decisions count from now (see redecision.ts).
 */
export async function recordPolicy(db: Kysely<DB>, version: string, source: string, decidedBy: string | null = null): Promise<void> {
  await db
    .insertInto('policies')
    .values({ version, source, ...(decidedBy === null ? {} : { decided_by: decidedBy, decided_from: new Date() }) })
    .onConflict((oc) => oc.column('version').doNothing())
    .execute();
}

/** Upserts decisions keyed by (manifest, policy version). */
export async function upsert(db: Kysely<DB>, rows: readonly { readonly input: DecisionInput; readonly decision: Decision }[]): Promise<void> {
  if (rows.length === 0) {
    return;
  }
  const now = new Date();
  await db
    .insertInto('decisions')
    .values(
      rows.map(({ input, decision }) => ({
        manifest_id: input.manifestId,
        policy_version: decision.policyVersion,
        allowed: decision.allowed,
        reason: decision.reason,
        message: decision.message,
        signers: JSON.stringify(decision.signers),
        rule: decision.rule,
        mode: decision.mode,
        scoped: decision.scoped === undefined ? null : JSON.stringify(decision.scoped),
        attestations: decision.attestations === undefined ? null : JSON.stringify(decision.attestations),
        expires_at: decision.expiresAt ?? null,
        verified_at: input.verifiedAt,
        decided_at: now,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['manifest_id', 'policy_version']).doUpdateSet((eb) => ({
        allowed: eb.ref('excluded.allowed'),
        reason: eb.ref('excluded.reason'),
        message: eb.ref('excluded.message'),
        signers: eb.ref('excluded.signers'),
        rule: eb.ref('excluded.rule'),
        mode: eb.ref('excluded.mode'),
        scoped: eb.ref('excluded.scoped'),
        attestations: eb.ref('excluded.attestations'),
        expires_at: eb.ref('excluded.expires_at'),
        verified_at: eb.ref('excluded.verified_at'),
        decided_at: eb.ref('excluded.decided_at'),
      })),
    )
    .execute();
}

/**
 * `byId`: the rows are read by manifest ids (a range for a load, the one image a miss found by its
 * digest), each image's decision under the version ({@link underVersion}); the version is then
 * compared as an expression no `policy_version` index serves, so the range drives the scan,
 * whatever the statistics say (see redecision.ts). Paged by `manifest_id > after … LIMIT` instead,
 * the planner read every row of the version through such an index and sorted them, on every page, when the
 * version was rare in its statistics (just after a worker wrote it: when replicas switch to it),
 * or, with the version as an expression, every row after the page: loads were quadratic. Not
 * `byId`: the version's own rows (through its indexes), without those of images that have a row
 * under `shadowedBy` (reading a base's rows apart).
 */
function selectStored(db: Kysely<DB>, policyVersion: string, byId = false, shadowedBy: string | null = null) {
  return db
    .selectFrom('manifests as m')
    .$call(withRepository)
    .innerJoin('decisions as d', 'd.manifest_id', 'm.id')
    .select([
      'd.manifest_id',
      'g.host as registry',
      'r.name as repository',
      'm.digest',
      'd.allowed',
      'd.reason',
      'd.message',
      'd.signers',
      'd.rule',
      'd.mode',
      'd.scoped',
      'd.attestations',
      'd.expires_at',
      // The version read for, which a base's row counts under (the row's own is another).
      sql<string>`${shadowedBy ?? policyVersion}::text`.as('policyVersion'),
      'd.verified_at as verifiedAt',
    ])
    .$call((q) => (byId ? q.where(underVersion(policyVersion, true)) : q.where('d.policy_version', '=', policyVersion)))
    .$if(shadowedBy !== null, (q) => q.where(notUnder(shadowedBy!)));
}

type StoredRow = Awaited<ReturnType<ReturnType<typeof selectStored>['execute']>>[number];

function toStored({ manifest_id: _, scoped, attestations, expires_at, ...decision }: StoredRow): StoredDecision {
  return { ...decision, ...(scoped === null ? {} : { scoped }), ...attestationColumns(attestations, expires_at) };
}

/** The attestation results and expiry of a stored decision, as the Decision type carries them (absent when the rule had none). */
function attestationColumns(attestations: readonly AttestationCheck[] | null, expiresAt: Date | null): Pick<Decision, 'attestations' | 'expiresAt'> {
  return attestations === null ? {} : { attestations, expiresAt: expiresAt?.toISOString() ?? null };
}

/**
 * The decisions under `policyVersion` of the images with an id in (lo, hi], in id order
 * (warm-loading the whole in-memory table a range at a time).
 */
export async function listRange(db: Kysely<DB>, policyVersion: string, lo: string, hi: string): Promise<StoredDecision[]> {
  const query = selectStored(db, policyVersion, true).where('d.manifest_id', '>', lo).where('d.manifest_id', '<=', hi);
  return (await query.orderBy('d.manifest_id').execute()).map(toStored);
}

/**
 * The rows of `policyVersion` decided since `decidedSince` (a bounded load: the most recent; a
 * version with a base loads the base's rows with `shadowedBy` the version, then its own), oldest
 * first, a page after `after` (the `cursor` of the page's last row before) at a time: read through
 * the (policy_version, decided_at) index, not the whole ledger. The cursor keeps
 * the time as Postgres wrote it (microseconds; a Date would round it to milliseconds and read rows
 * again, or forever when a page's worth share a millisecond).
 */
export async function listRecentPage(
  db: Kysely<DB>,
  policyVersion: string,
  decidedSince: Date,
  after: DecisionCursor | null,
  limit: number,
  shadowedBy: string | null = null,
): Promise<(StoredDecision & { readonly cursor: DecisionCursor })[]> {
  let query = selectStored(db, policyVersion, false, shadowedBy).select(sql<string>`d.decided_at::text`.as('decided_at')).where('d.decided_at', '>=', decidedSince);
  if (after !== null) {
    query = query.where(sql<boolean>`(d.decided_at, d.manifest_id) > (${after.decidedAt}::timestamptz, ${after.manifestId}::bigint)`);
  }
  const rows = await query.orderBy('d.decided_at').orderBy('d.manifest_id').limit(limit).execute();
  return rows.map(({ decided_at, ...row }) => ({ ...toStored(row), cursor: { decidedAt: decided_at, manifestId: row.manifest_id } }));
}

/** Where a page of {@link listRecentPage} ended: the last row's decision time, as Postgres's text, and image id. */
export interface DecisionCursor {
  readonly decidedAt: string;
  readonly manifestId: string;
}

export async function find(db: Kysely<DB>, policyVersion: string, registry: string, repository: string, digest: Digest): Promise<StoredDecision | null> {
  // The image is found by its digest, its decision through the primary key. With the version as a
  // plain column, a version the statistics have not seen yet (just switched to) made the planner
  // walk that version's index and filter by image: a miss read every decision of the version up to
  // its image (p50 7 ms, p99 50 ms at 220k on `npm run bench:table`).
  const row = await selectStored(db, policyVersion, true)
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .where('m.digest', '=', digest)
    .executeTakeFirst();
  return row === undefined ? null : toStored(row);
}

const imageDecisionColumns = [
  'manifest_id as manifestId',
  'attestations',
  'expires_at',
  'allowed',
  'reason',
  'message',
  'rule',
  'mode',
  'policy_version as policyVersion',
  'signers',
  'verified_at as verifiedAt',
  'decided_at as decidedAt',
] as const;

type ImageDecisionRow = Awaited<ReturnType<ReturnType<typeof selectImageDecisions>['execute']>>[number];

function selectImageDecisions(db: Kysely<DB>, policyVersion: string) {
  return db.selectFrom('decisions as d').select(imageDecisionColumns.map((c) => `d.${c}` as const)).where(underVersion(policyVersion));
}

function toImageDecision({ attestations, expires_at, ...decision }: ImageDecisionRow): ImageDecision {
  return { ...decision, ...attestationColumns(attestations, expires_at) };
}

/** Each image's decision under a policy version. */
export async function byImageIds(db: Kysely<DB>, imageIds: readonly string[], policyVersion: string): Promise<ImageDecision[]> {
  // A base's row counts under the version read for (the row's own version is the base).
  return (await selectImageDecisions(db, policyVersion).where('d.manifest_id', 'in', imageIds).execute()).map((r) => ({ ...toImageDecision(r), policyVersion }));
}

/**
 * The images whose decision under `policyVersion` expires at or before `at` (what the expiry job
 * decides again): among its own rows, then its base's that it has none for, each through the
 * expiry index.
 */
export async function expiringBy(db: Kysely<DB>, policyVersion: string, at: Date, limit: number): Promise<string[]> {
  const due = async (version: string, shadowedBy: string | null) =>
    (
      await db
        .selectFrom('decisions as d')
        .select('d.manifest_id')
        .where('d.policy_version', '=', version)
        .where('d.expires_at', '<=', at)
        .$if(shadowedBy !== null, (q) => q.where(notUnder(shadowedBy!)))
        .orderBy('d.expires_at')
        .limit(limit)
        .execute()
    ).map((r) => r.manifest_id);
  const own = await due(policyVersion, null);
  const base = own.length >= limit ? null : await baseOf(db, policyVersion);
  return base === null ? own : [...own, ...(await due(base, policyVersion)).slice(0, limit - own.length)];
}

/** The earliest expiry among the decisions under `policyVersion` (its own rows and its base's it has none for), if any. */
export async function nextExpiry(db: Kysely<DB>, policyVersion: string): Promise<Date | null> {
  const earliest = async (version: string, shadowedBy: string | null) =>
    (
      await db
        .selectFrom('decisions as d')
        .select((eb) => eb.fn.min('d.expires_at').as('at'))
        .where('d.policy_version', '=', version)
        .where('d.expires_at', 'is not', null)
        .$if(shadowedBy !== null, (q) => q.where(notUnder(shadowedBy!)))
        .executeTakeFirst()
    )?.at ?? null;
  const base = await baseOf(db, policyVersion);
  const times = [await earliest(policyVersion, null), base === null ? null : await earliest(base, policyVersion)].filter((t): t is Date => t !== null);
  return times.length === 0 ? null : new Date(Math.min(...times.map((t) => t.getTime())));
}

/** Which denials a list holds: in a registry and/or repository (null: any), for some reasons (null: any). */
export interface DenialFilter {
  readonly registry: string | null;
  readonly repository: string | null;
  readonly reasons: readonly DecisionReason[] | null;
}

/** The denials among `policyVersion`'s own rows, less those of images with a row under `shadowedBy` (a base's, read apart). */
function denials(db: Kysely<DB>, policyVersion: string, f: DenialFilter, shadowedBy: string | null) {
  let q = db.selectFrom('decisions as d').where('d.policy_version', '=', policyVersion).where('d.allowed', '=', false);
  if (shadowedBy !== null) {
    q = q.where(notUnder(shadowedBy));
  }
  if (f.registry !== null || f.repository !== null) {
    q = q.where('d.manifest_id', 'in', (eb) => {
      let m = eb.selectFrom('manifests as m').$call(withRepository).select('m.id');
      m = f.registry === null ? m : m.where('g.host', '=', f.registry);
      return f.repository === null ? m : m.where('r.name', '=', f.repository);
    });
  }
  if (f.reasons !== null) {
    q = f.reasons.length === 0 ? q.where(sql<boolean>`false`) : q.where('d.reason', 'in', f.reasons);
  }
  return q;
}

/**
 * Denials under a policy version, newest decision first: a keyset page over decisions_denied_idx,
 * after the denial of image `after`. A version with a base reads its own and the base's apart, each
 * through the index, and merges them.
 */
export async function pageDenials(db: Kysely<DB>, policyVersion: string, f: DenialFilter, first: number, after: string | null): Promise<Page<ImageDecision & { id: string }>> {
  const base = await baseOf(db, policyVersion);
  const pageOf = async (version: string, shadowedBy: string | null) => {
    let q = denials(db, version, f, shadowedBy)
      .select(imageDecisionColumns.map((c) => `d.${c}` as const))
      .select('d.manifest_id as id')
      .orderBy('d.decided_at', 'desc')
      .orderBy('d.manifest_id', 'desc')
      .limit(first + 1);
    if (after !== null) {
      q = q.where(sql<boolean>`(d.decided_at, d.manifest_id) < (SELECT d.decided_at, d.manifest_id FROM decisions d WHERE d.manifest_id = ${after} AND ${underVersion(policyVersion)})`);
    }
    return await q.execute();
  };
  const rows = base === null ? await pageOf(policyVersion, null) : [...(await pageOf(policyVersion, null)), ...(await pageOf(base, policyVersion))];
  // Newest first; the ids break ties (one row per image).
  rows.sort((a, b) => b.decidedAt.getTime() - a.decidedAt.getTime() || Number(BigInt(b.id) - BigInt(a.id)));
  return page(
    rows.slice(0, first + 1).map(({ id, ...r }) => ({ ...toImageDecision(r), policyVersion, id })),
    first,
  );
}

export async function countDenials(db: Kysely<DB>, policyVersion: string, f: DenialFilter): Promise<number> {
  const base = await baseOf(db, policyVersion);
  const count = async (version: string, shadowedBy: string | null) =>
    Number((await denials(db, version, f, shadowedBy).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  return (await count(policyVersion, null)) + (base === null ? 0 : await count(base, policyVersion));
}

/** An image's decisions under every policy version, newest decision first; `offset` rows skipped (an image has one per policy version it was decided under). */
export async function history(db: Kysely<DB>, manifestId: string, first: number, offset: number): Promise<Page<ImageDecision & { id: string }>> {
  const rows = await db
    .selectFrom('decisions')
    .select(imageDecisionColumns)
    .where('manifest_id', '=', manifestId)
    .orderBy('decided_at', 'desc')
    .orderBy('policy_version')
    .limit(first + 1)
    .offset(offset)
    .execute();
  return page(
    rows.map((r, i) => ({ ...toImageDecision(r), id: String(offset + i + 1) })),
    first,
  );
}

export async function countHistory(db: Kysely<DB>, manifestId: string): Promise<number> {
  const row = await db.selectFrom('decisions').select((eb) => eb.fn.countAll<string>().as('n')).where('manifest_id', '=', manifestId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * When the `n`-th most recently decided image under a policy version was decided, or null when
 * there are no more than `n`: a bounded decision table loads only what was decided since. With a
 * base, over both versions' rows (each through its index, merged): an image with rows under both
 * counts twice, so the table may load somewhat fewer than `n`.
 */
export async function recentCutoff(db: Kysely<DB>, policyVersion: string, n: number): Promise<Date | null> {
  const recent = (version: string) => sql`(SELECT decided_at FROM decisions WHERE policy_version = ${version} ORDER BY decided_at DESC LIMIT ${n})`;
  const base = await baseOf(db, policyVersion);
  const { rows } = await sql<{ decided_at: Date }>`
    SELECT decided_at FROM (${recent(policyVersion)}${base === null ? sql`` : sql` UNION ALL ${recent(base)}`}) r
    ORDER BY decided_at DESC OFFSET ${n - 1} LIMIT 1`.execute(db);
  return rows[0]?.decided_at ?? null;
}
