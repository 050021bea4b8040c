import type { Kysely } from 'kysely';
import type { Decision, ManifestFacts } from '../../domain/decision.ts';
import type { Digest } from '../../domain/digest.ts';
import type { DB } from '../schema.generated.ts';
import { withRepository } from './fragments.ts';
import * as images from './images.ts';
import * as signatures from './signatures.ts';

// Admission decisions, one per (manifest, policy version), the policies they were made under, and
// what deciding reads.

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

/** Reads what the policy needs for the given manifests, from stored material only. */
export async function loadInputs(db: Kysely<DB>, manifestIds: readonly string[]): Promise<DecisionInput[]> {
  if (manifestIds.length === 0) {
    return [];
  }
  const found = await images.byIds(db, manifestIds);
  const { facts, withdrawn } = await signatures.factsByImageIds(db, manifestIds);
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
    },
  }));
}

export async function recordPolicy(db: Kysely<DB>, version: string, source: string): Promise<void> {
  await db.insertInto('policies').values({ version, source }).onConflict((oc) => oc.column('version').doNothing()).execute();
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
        verified_at: eb.ref('excluded.verified_at'),
        decided_at: eb.ref('excluded.decided_at'),
      })),
    )
    .execute();
}

function selectStored(db: Kysely<DB>, policyVersion: string) {
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
      'd.policy_version as policyVersion',
      'd.verified_at as verifiedAt',
    ])
    .where('d.policy_version', '=', policyVersion);
}

type StoredRow = Awaited<ReturnType<ReturnType<typeof selectStored>['execute']>>[number];

function toStored({ manifest_id: _, scoped, ...decision }: StoredRow): StoredDecision {
  return scoped === null ? decision : { ...decision, scoped };
}

/** Every decision under `policyVersion`, in pages (warm-loading the in-memory table). */
export async function list(
  db: Kysely<DB>,
  policyVersion: string,
  afterManifestId: string,
  limit: number,
): Promise<{ decisions: StoredDecision[]; last: string | null }> {
  const rows = await selectStored(db, policyVersion).where('d.manifest_id', '>', afterManifestId).orderBy('d.manifest_id').limit(limit).execute();
  return { decisions: rows.map(toStored), last: rows.at(-1)?.manifest_id ?? null };
}

export async function find(db: Kysely<DB>, policyVersion: string, registry: string, repository: string, digest: Digest): Promise<StoredDecision | null> {
  const row = await selectStored(db, policyVersion)
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .where('m.digest', '=', digest)
    .executeTakeFirst();
  return row === undefined ? null : toStored(row);
}

const imageDecisionColumns = [
  'manifest_id as manifestId',
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

/** Each image's decision under a policy version. */
export function byImageIds(db: Kysely<DB>, imageIds: readonly string[], policyVersion: string): Promise<ImageDecision[]> {
  return db.selectFrom('decisions').select(imageDecisionColumns).where('manifest_id', 'in', imageIds).where('policy_version', '=', policyVersion).execute();
}

/** The newest denials under a policy version (decided_at order; the policy index narrows the scan). */
export function recentDenials(db: Kysely<DB>, policyVersion: string, first: number): Promise<ImageDecision[]> {
  return db
    .selectFrom('decisions')
    .select(imageDecisionColumns)
    .where('policy_version', '=', policyVersion)
    .where('allowed', '=', false)
    .orderBy('decided_at', 'desc')
    .limit(first)
    .execute();
}
