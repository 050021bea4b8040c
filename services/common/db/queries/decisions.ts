import type { Kysely } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { Decision, ManifestFacts, SignatureFact } from '../../domain/decision.ts';
import type { DB } from '../schema.generated.ts';
import { findImage } from './ledger.ts';

/** A manifest as the decision table keys it, with the facts the policy reads. */
export interface DecisionInput {
  readonly manifestId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly verifiedAt: Date;
  readonly facts: ManifestFacts;
}

export interface StoredDecision extends Decision {
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly verifiedAt: Date;
}

function payloadAnnotations(payload: Buffer): Record<string, unknown> | null {
  try {
    const optional = (JSON.parse(payload.toString('utf8')) as { optional?: unknown }).optional;
    return optional !== null && typeof optional === 'object' && !Array.isArray(optional) ? (optional as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Reads what the policy needs for the given manifests, from stored material only. */
export async function loadDecisionInputs(db: Kysely<DB>, manifestIds: readonly string[]): Promise<DecisionInput[]> {
  if (manifestIds.length === 0) {
    return [];
  }
  const manifests = await db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['m.id', 'm.digest', 'm.status', 'm.indexed_at', 'r.name as repository', 'g.host as registry'])
    .where('m.id', 'in', [...manifestIds])
    .execute();
  const signatures = await db
    .selectFrom('signatures as s')
    .leftJoin('identities as i', 'i.id', 's.identity_id')
    .select([
      's.manifest_id',
      's.outcome',
      's.reason',
      's.subject',
      's.issuer',
      'i.kind',
      's.claims',
      's.key_fingerprint',
      's.rekor_log_index',
      's.payload',
    ])
    .where('s.manifest_id', 'in', [...manifestIds])
    // Attestations say something about an image; only signatures vouch for it.
    .where('s.kind', '=', 'signature')
    .orderBy('s.id')
    .execute();
  const byManifest = new Map<string, SignatureFact[]>();
  for (const s of signatures) {
    const fact: SignatureFact = {
      outcome: s.outcome,
      reason: s.reason,
      // Only verified signatures have an identity row; an unverified one proves no identity.
      identity: s.kind === null || s.subject === null ? null : { kind: s.kind, subject: s.subject, issuer: s.issuer },
      claims: s.claims,
      keyFingerprint: s.key_fingerprint,
      tlog: s.rekor_log_index !== null,
      annotations: payloadAnnotations(s.payload),
    };
    byManifest.set(s.manifest_id, [...(byManifest.get(s.manifest_id) ?? []), fact]);
  }
  return manifests.map((m) => ({
    manifestId: m.id,
    registry: m.registry,
    repository: m.repository,
    digest: m.digest,
    verifiedAt: m.indexed_at,
    facts: {
      registry: m.registry,
      repository: m.repository,
      status: m.status,
      signatures: byManifest.get(m.id) ?? [],
    },
  }));
}

/** Manifest ids in pages, for re-deciding the whole ledger. */
export async function manifestIdsAfter(db: Kysely<DB>, after: string, limit: number): Promise<string[]> {
  const rows = await db.selectFrom('manifests').select('id').where('id', '>', after).orderBy('id').limit(limit).execute();
  return rows.map((r) => r.id);
}

export async function recordPolicy(db: Kysely<DB>, version: string, source: string): Promise<void> {
  await db.insertInto('policies').values({ version, source }).onConflict((oc) => oc.column('version').doNothing()).execute();
}

/** Upserts decisions keyed by (manifest, policy version). */
export async function upsertDecisions(
  db: Kysely<DB>,
  rows: readonly { readonly input: DecisionInput; readonly decision: Decision }[],
): Promise<void> {
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
        verified_at: eb.ref('excluded.verified_at'),
        decided_at: eb.ref('excluded.decided_at'),
      })),
    )
    .execute();
}

function selectDecisions(db: Kysely<DB>, policyVersion: string) {
  return db
    .selectFrom('decisions as d')
    .innerJoin('manifests as m', 'm.id', 'd.manifest_id')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
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
      'd.policy_version',
      'd.verified_at',
    ])
    .where('d.policy_version', '=', policyVersion);
}

type DecisionRow = Awaited<ReturnType<ReturnType<typeof selectDecisions>['execute']>>[number];

function toStored(r: DecisionRow): StoredDecision {
  return {
    registry: r.registry,
    repository: r.repository,
    digest: r.digest,
    allowed: r.allowed,
    reason: r.reason,
    message: r.message,
    signers: r.signers,
    rule: r.rule,
    policyVersion: r.policy_version,
    verifiedAt: r.verified_at,
  };
}

/** Every decision under `policyVersion`, in pages (warm-loading the in-memory table). */
export async function listDecisions(db: Kysely<DB>, policyVersion: string, afterManifestId: string, limit: number): Promise<{ decisions: StoredDecision[]; last: string | null }> {
  const rows = await selectDecisions(db, policyVersion).where('d.manifest_id', '>', afterManifestId).orderBy('d.manifest_id').limit(limit).execute();
  return { decisions: rows.map(toStored), last: rows.at(-1)?.manifest_id ?? null };
}

export async function findDecision(
  db: Kysely<DB>,
  policyVersion: string,
  registry: string,
  repository: string,
  digest: Digest,
): Promise<StoredDecision | null> {
  const row = await selectDecisions(db, policyVersion)
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .where('m.digest', '=', digest)
    .executeTakeFirst();
  return row === undefined ? null : toStored(row);
}

/** Current tag → digest, from the ledger (never the registry). */
export async function findTag(db: Kysely<DB>, registry: string, repository: string, tag: string): Promise<Digest | null> {
  const row = await db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select('t.digest')
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .where('t.name', '=', tag)
    .executeTakeFirst();
  return row === undefined ? null : row.digest;
}

/** Every current tag (warm-loading the in-memory table). */
export async function listTags(db: Kysely<DB>): Promise<{ registry: string; repository: string; tag: string; digest: Digest }[]> {
  const rows = await db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['g.host', 'r.name', 't.name as tag', 't.digest'])
    .execute();
  return rows.map((t) => ({ registry: t.host, repository: t.name, tag: t.tag, digest: t.digest }));
}

export async function findManifestId(db: Kysely<DB>, registry: string, repository: string, digest: Digest): Promise<string | null> {
  return (await findImage(db, registry, repository, { digest }))?.id ?? null;
}
