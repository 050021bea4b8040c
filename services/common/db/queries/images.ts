import { sql, type ExpressionBuilder, type Kysely, type SelectQueryBuilder, type Transaction } from 'kysely';
import type { DecisionReason } from '../../domain/decision.ts';
import type { Digest } from '../../domain/digest.ts';
import { summarizeOutcomes, type ManifestStatus } from '../../domain/outcome.ts';
import type { SignatureRecord, SignatureSources, WithdrawalCause } from '../../domain/signature.ts';
import { storableText } from '../../domain/storable.ts';
import type { DB } from '../schema.generated.ts';
import { statementTemplate } from '../template.ts';
import { page, underVersion, withRepository, type Page } from './fragments.ts';
import * as ownership from './ownership.ts';
import * as repositories from './repositories.ts';
import * as signatures from './signatures.ts';

// Images: the manifests (images and indexes) pushed to a repository, keyed by digest, and the
// links between an index and its children. Recording an indexed image writes its signatures and
// ownership changes too, in one transaction.

/** A manifest (image or index) in one repository. */
export interface Image {
  readonly id: string;
  readonly repositoryId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** Bytes, as a decimal string (bigint). */
  readonly size: string;
  readonly status: ManifestStatus;
  readonly statusReason: string | null;
  readonly firstSeenAt: Date;
  readonly indexedAt: Date;
  readonly deletedAt: Date | null;
}

export interface Platform {
  readonly os: string | null;
  readonly architecture: string | null;
  readonly variant: string | null;
}

/** An index's child, at a position, with the platform the index names for it (null: none named). */
export interface IndexLink {
  readonly indexId: string;
  readonly childId: string;
  readonly position: number;
  readonly platform: Platform | null;
}

/** One manifest as the worker found it: the pushed one first, then an index's children. */
export interface IndexedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** For a child of an index: the index, its position and the platform the index names. */
  readonly parent: { readonly digest: Digest; readonly position: number; readonly platform: Platform | null } | null;
  readonly signatures: readonly SignatureRecord[];
  /** Set when the signature artifact itself could not be read (hostile or broken `.sig` manifest). */
  readonly discoveryError: string | null;
  /**
   * What discovery read: stored signatures it no longer finds are withdrawn, found again are
   * un-withdrawn. Absent when `signatures` is not everything found (re-verification): nothing is.
   */
  readonly sources?: SignatureSources;
}

/** When a discovery started and what caused it: what it no longer finds is withdrawn with these. */
export interface Observation {
  readonly at: Date;
  readonly by: WithdrawalCause;
}

export interface RecordedIndex {
  readonly manifests: StoredManifest[];
  readonly ownershipChanges: ownership.OwnershipChange[];
}

export interface StoredManifest {
  readonly id: string;
  readonly digest: Digest;
  readonly status: ManifestStatus;
  readonly signatureCount: number;
  readonly verifiedCount: number;
  /** Signatures and attestations withdrawn by this write. */
  readonly withdrawn: number;
}

/**
 * Writes everything one indexing job learnt, in one transaction under the repository lock:
 * manifests (upsert by repository + digest), index children, identities, and signatures (upsert by
 * manifest + material digest: a re-index never duplicates rows, and never forgets a signature it
 * saw before). Stored signatures the discovery no longer found are withdrawn (kept, counting for
 * nothing), those it found again where clients look are un-withdrawn. Each manifest's status is
 * then recomputed from its current (not withdrawn) signatures, and every verified identity new to
 * the repository is recorded as an ownership change.
 */
export async function recordIndexed(
  db: Kysely<DB>,
  registry: string,
  repository: string,
  manifests: readonly IndexedManifest[],
  observation: Observation = { at: new Date(), by: 'reindex' },
): Promise<RecordedIndex> {
  // Signatures are written without a savepoint each; a row Postgres refuses fails the transaction,
  // which is then run again with them (recording that one malformed, see signatures.upsert).
  try {
    return await recordIndexedOnce(db, registry, repository, manifests, observation, false);
  } catch (err) {
    if (!signatures.isRefusedRow(err)) {
      throw err;
    }
    return recordIndexedOnce(db, registry, repository, manifests, observation, true);
  }
}

function recordIndexedOnce(
  db: Kysely<DB>,
  registry: string,
  repository: string,
  manifests: readonly IndexedManifest[],
  observation: Observation,
  careful: boolean,
): Promise<RecordedIndex> {
  return db.transaction().execute(async (trx) => {
    const repositoryId = await repositories.lockAndEnsure(trx, registry, repository);
    const ids = new Map<Digest, string>();
    const stored: StoredManifest[] = [];
    const signers = new Map<string, { manifestId: string; digest: Digest; sig: SignatureRecord }>();
    for (const m of manifests) {
      // A complete discovery claims the manifest's observation time in the same statement.
      const complete = m.sources?.complete === true;
      const { id: manifestId, claimed } = await upsertManifest(trx, repositoryId, m, complete ? observation.at : null);
      ids.set(m.digest, manifestId);
      if (m.parent !== null) {
        const parentId = ids.get(m.parent.digest);
        if (parentId === undefined) {
          throw new Error(`index ${m.parent.digest} must be recorded before its child ${m.digest}`);
        }
        await trx
          .insertInto('manifest_children')
          .values({
            index_id: parentId,
            child_id: manifestId,
            position: m.parent.position,
            // Whatever the index says, stored as text Postgres takes (see domain/storable.ts).
            platform_os: nullableText(m.parent.platform?.os),
            platform_architecture: nullableText(m.parent.platform?.architecture),
            platform_variant: nullableText(m.parent.platform?.variant),
          })
          .onConflict((oc) => oc.columns(['index_id', 'child_id']).doNothing())
          .execute();
      }
      const identityIds: (string | null)[] = [];
      for (const sig of m.signatures) {
        identityIds.push(await signatures.upsert(trx, manifestId, sig, careful));
      }
      // A complete discovery older than one already recorded says nothing about what is gone.
      const sources = complete && !claimed ? { ...m.sources, complete: false } : (m.sources ?? null);
      const { withdrawn, newlyWithdrawn } = await signatures.reconcileWithdrawals(trx, manifestId, m.signatures, sources, observation);
      // A withdrawn signature owns nothing: its signer is no (new) owner.
      m.signatures.forEach((sig, i) => {
        const identityId = identityIds[i] ?? null;
        if (identityId !== null && !signers.has(identityId) && !withdrawn.has(sig.materialDigest)) {
          signers.set(identityId, { manifestId, digest: m.digest, sig });
        }
      });
      stored.push({ ...(await refreshStatus(trx, manifestId, m)), withdrawn: newlyWithdrawn });
    }
    const ownershipChanges = await ownership.recordChanges(trx, repositoryId, signers);
    return { manifests: stored, ownershipChanges: ownershipChanges.map((c) => ({ ...c, registry, repository })) };
  });
}

function nullableText(s: string | null | undefined): string | null {
  return s === null || s === undefined ? null : storableText(s);
}

/**
 * Inserts the manifest or marks it present again; with `observedAt` (a complete discovery that
 * started then), also records that observation unless one that started later is recorded already
 * (under the repository lock, so two cannot race): `claimed` says whether it was. A complete
 * discovery older than the one recorded says nothing about what is gone.
 */
async function upsertManifest(trx: Transaction<DB>, repositoryId: string, m: IndexedManifest, observedAt: Date | null): Promise<{ id: string; claimed: boolean }> {
  const mediaType = storableText(m.mediaType);
  const row = await trx
    .insertInto('manifests')
    .values({ repository_id: repositoryId, digest: m.digest, media_type: mediaType, size: m.size, status: 'unsigned', observed_at: observedAt })
    .onConflict((oc) =>
      // Fetched from the registry just now, so it exists again: a re-push after a delete unmarks it.
      oc.columns(['repository_id', 'digest']).doUpdateSet((eb) => ({
        media_type: mediaType,
        size: m.size,
        indexed_at: new Date(),
        deleted_at: null,
        ...(observedAt === null
          ? {}
          : {
              observed_at: eb
                .case()
                .when(eb.or([eb('manifests.observed_at', 'is', null), eb('manifests.observed_at', '<=', observedAt)]))
                .then(observedAt)
                .else(eb.ref('manifests.observed_at'))
                .end(),
            }),
      })),
    )
    .returning((eb) => ['id', observedAt === null ? sql<boolean>`false`.as('claimed') : eb('observed_at', '=', observedAt).as('claimed')])
    .executeTakeFirstOrThrow();
  return { id: row.id, claimed: row.claimed === true };
}

async function refreshStatus(trx: Transaction<DB>, manifestId: string, m: IndexedManifest): Promise<Omit<StoredManifest, 'withdrawn'>> {
  const all = await signatures.verdictsOf(trx, manifestId);
  // Attestations are recorded, not counted: an image with only attestations is unsigned.
  const rows = all.filter((r) => r.kind === 'signature');
  const outcomes = rows.map((r) => r.outcome);
  let status = summarizeOutcomes(outcomes);
  let reason = status === 'verified' || status === 'unsigned' ? null : (rows.find((r) => r.outcome === status)?.reason ?? null);
  if (rows.length === 0 && m.discoveryError !== null) {
    status = 'malformed';
    reason = storableText(m.discoveryError);
  }
  const verifiedCount = outcomes.filter((o) => o === 'verified').length;
  await trx
    .updateTable('manifests')
    .set({
      status,
      status_reason: reason,
      signature_count: rows.length,
      verified_count: verifiedCount,
      attestation_count: all.length - rows.length,
      indexed_at: new Date(),
    })
    .where('id', '=', manifestId)
    .execute();
  return { id: manifestId, digest: m.digest, status, signatureCount: rows.length, verifiedCount };
}

/** Marks a deleted manifest; the ledger keeps its history. Returns how many rows were marked. */
export async function markDeleted(trx: Transaction<DB>, repositoryId: string, digest: Digest, at: Date): Promise<number> {
  const result = await trx
    .updateTable('manifests')
    .set({ deleted_at: at })
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

const imageColumns = [
  'm.id',
  'm.repository_id as repositoryId',
  'g.host as registry',
  'r.name as repository',
  'm.digest',
  'm.media_type as mediaType',
  'm.size',
  'm.status',
  'm.status_reason as statusReason',
  'm.first_seen_at as firstSeenAt',
  'm.indexed_at as indexedAt',
  'm.deleted_at as deletedAt',
] as const;

function selectImages(db: Kysely<DB>) {
  return db.selectFrom('manifests as m').$call(withRepository).select(imageColumns);
}

export function byIds(db: Kysely<DB>, ids: readonly string[]): Promise<Image[]> {
  return selectImages(db).where('m.id', 'in', ids).execute();
}

export function byRepositoryDigests(db: Kysely<DB>, keys: readonly { repositoryId: string; digest: Digest }[]): Promise<Image[]> {
  return selectImages(db)
    .where((eb) => eb(eb.refTuple('m.repository_id', 'm.digest'), 'in', keys.map((k) => eb.tuple(k.repositoryId, k.digest))))
    .execute();
}

/** The image for `digest` in a repository, or for what `tag` points at now. */
export async function find(db: Kysely<DB>, registry: string, repository: string, ref: { digest: Digest } | { tag: string }): Promise<Image | null> {
  let q = selectImages(db).where('g.host', '=', registry).where('r.name', '=', repository);
  q =
    'digest' in ref
      ? q.where('m.digest', '=', ref.digest)
      : q.where('m.digest', '=', (eb) => eb.selectFrom('tags as t').select('t.digest').where('t.repository_id', '=', eb.ref('r.id')).where('t.name', '=', ref.tag));
  return (await q.executeTakeFirst()) ?? null;
}

/** An image's row beside each of its signatures (see `findWithSignatures`); the image is picked by the caller's `where`. */
function imageWithSignatures(db: Kysely<DB>, registry: string, repository: string) {
  return db
    .selectFrom('manifests as m')
    .$call(withRepository)
    .leftJoinLateral(
      signatures
        .selectSignatures(db)
        .where('s.manifest_id', '=', sql<string>`m.id`)
        .as('x'),
      (join) => join.onTrue(),
    )
    .select([...imageColumns.filter((c) => c !== 'm.id'), 'm.id as image_id'])
    .select(signatures.SIGNATURE_ROW_COLUMNS.map((c) => `x.${c}` as const))
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .orderBy('x.id');
}

// Built once each (`image(ref)` runs one per request; building it was a third of the request's CPU).
const withSignaturesByDigest = statementTemplate((db: Kysely<DB>, registry: string, repository: string, digest: string) =>
  imageWithSignatures(db, registry, repository).where('m.digest', '=', digest as Digest),
);
const withSignaturesByTag = statementTemplate((db: Kysely<DB>, registry: string, repository: string, tag: string) =>
  imageWithSignatures(db, registry, repository).where('m.digest', '=', (eb) =>
    eb.selectFrom('tags as t').select('t.digest').where('t.repository_id', '=', eb.ref('r.id')).where('t.name', '=', tag),
  ),
);

/**
 * An image by reference with every signature of it (withdrawn ones too) and their verified signers:
 * one statement, the signatures read laterally beside the image row (one row per signature, the
 * image's columns repeated; an image without any still comes back, once).
 */
export async function findWithSignatures(
  db: Kysely<DB>,
  registry: string,
  repository: string,
  ref: { digest: Digest } | { tag: string },
): Promise<{ image: Image; signatures: signatures.Signature[] } | null> {
  const rows = 'digest' in ref ? await withSignaturesByDigest(db, registry, repository, ref.digest) : await withSignaturesByTag(db, registry, repository, ref.tag);
  const first = rows[0];
  if (first === undefined) {
    return null;
  }
  const image: Image = {
    id: first.image_id,
    repositoryId: first.repositoryId,
    registry: first.registry,
    repository: first.repository,
    digest: first.digest,
    mediaType: first.mediaType,
    size: first.size,
    status: first.status,
    statusReason: first.statusReason,
    firstSeenAt: first.firstSeenAt,
    indexedAt: first.indexedAt,
    deletedAt: first.deletedAt,
  };
  // A row without a signature (x.id null) is the image alone.
  return { image, signatures: rows.filter((r) => r.id !== null).map((r) => signatures.toSignature(r as signatures.SignatureRow)) };
}

export async function findId(db: Kysely<DB>, registry: string, repository: string, digest: Digest): Promise<string | null> {
  return (await find(db, registry, repository, { digest }))?.id ?? null;
}

/** Manifest ids in pages, in id order (for going over the whole ledger). */
export async function idsAfter(db: Kysely<DB>, after: string, limit: number): Promise<string[]> {
  const rows = await db.selectFrom('manifests').select('id').where('id', '>', after).orderBy('id').limit(limit).execute();
  return rows.map((r) => r.id);
}

function selectLinks(db: Kysely<DB>) {
  return db
    .selectFrom('manifest_children as c')
    .select(['c.index_id', 'c.child_id', 'c.position', 'c.platform_os', 'c.platform_architecture', 'c.platform_variant']);
}

type LinkRow = Awaited<ReturnType<ReturnType<typeof selectLinks>['execute']>>[number];

function toLink(c: LinkRow): IndexLink {
  return {
    indexId: c.index_id,
    childId: c.child_id,
    position: c.position,
    platform: c.platform_os === null && c.platform_architecture === null ? null : { os: c.platform_os, architecture: c.platform_architecture, variant: c.platform_variant },
  };
}

/** Each index's children, by position. */
export async function childrenOf(db: Kysely<DB>, indexIds: readonly string[]): Promise<IndexLink[]> {
  return (await selectLinks(db).where('c.index_id', 'in', indexIds).orderBy('c.position').execute()).map(toLink);
}

/** The indexes each manifest is a child of. */
export async function parentsOf(db: Kysely<DB>, childIds: readonly string[]): Promise<IndexLink[]> {
  return (await selectLinks(db).where('c.child_id', 'in', childIds).orderBy('c.index_id').execute()).map(toLink);
}

/**
 * Narrows a list of images (every condition given must hold). Decisions are read under
 * `policyVersion`; attestations count when verified and not withdrawn.
 */
export interface ImageFilter {
  readonly status?: readonly ManifestStatus[] | null;
  readonly allowed?: boolean | null;
  readonly decisionReason?: readonly DecisionReason[] | null;
  readonly hasAttestation?: boolean | null;
  readonly attestationPredicateType?: string | null;
  readonly missingAttestationPredicateType?: string | null;
  readonly policyVersion: string;
}

/** Where a list of images comes from: a registry (by host), a repository, or what an identity signed (optionally within a registry and/or repository name). */
export type ImageScope =
  | { readonly kind: 'registry'; readonly host: string }
  | { readonly kind: 'repository'; readonly repositoryId: string }
  | { readonly kind: 'identity'; readonly identityId: string; readonly registry: string | null; readonly repository: string | null };

type ImageQuery = SelectQueryBuilder<DB & { m: DB['manifests']; r: DB['repositories']; g: DB['registries'] }, 'm' | 'r' | 'g', object>;

/** The scope's manifests joined to their names; for an identity, driven by its signatures (newest manifest first). */
function scoped(db: Kysely<DB>, scope: ImageScope, after: string | null): ImageQuery {
  if (scope.kind === 'identity') {
    // The identity's manifests come off signatures_identity_idx in manifest order, each once.
    let ids = db.selectFrom('signatures as s').select('s.manifest_id as id').distinct().where('s.identity_id', '=', scope.identityId).where('s.withdrawn_at', 'is', null);
    if (after !== null) {
      ids = ids.where('s.manifest_id', '<', after);
    }
    let q = db.selectFrom(ids.as('x')).innerJoin('manifests as m', 'm.id', 'x.id').$call(withRepository) as unknown as ImageQuery;
    q = scope.registry === null ? q : q.where('g.host', '=', scope.registry);
    return scope.repository === null ? q : q.where('r.name', '=', scope.repository);
  }
  let q = db.selectFrom('manifests as m').$call(withRepository) as ImageQuery;
  q = scope.kind === 'registry' ? q.where('g.host', '=', scope.host) : q.where('m.repository_id', '=', scope.repositoryId);
  return after === null ? q : q.where('m.id', '<', after);
}

function attested(eb: ExpressionBuilder<DB & { m: DB['manifests'] }, 'm'>, predicateType: string | null) {
  let q = eb
    .selectFrom('signatures as a')
    .select('a.id')
    .whereRef('a.manifest_id', '=', 'm.id')
    .where('a.kind', '=', 'attestation')
    .where('a.outcome', '=', 'verified')
    .where('a.withdrawn_at', 'is', null);
  if (predicateType !== null) {
    q = q.where('a.predicate_type', '=', predicateType);
  }
  return eb.exists(q);
}

function filtered(q: ImageQuery, f: ImageFilter): ImageQuery {
  return q.where((eb) => {
    const conds = [];
    if (f.status !== null && f.status !== undefined) {
      conds.push(f.status.length === 0 ? eb.val(false) : eb('m.status', 'in', f.status));
    }
    const allowed = f.allowed ?? null;
    const reasons = f.decisionReason ?? null;
    if (allowed !== null || reasons !== null) {
      let d = eb.selectFrom('decisions as d').select('d.manifest_id').whereRef('d.manifest_id', '=', 'm.id').where(underVersion(f.policyVersion));
      if (allowed !== null) {
        d = d.where('d.allowed', '=', allowed);
      }
      if (reasons !== null) {
        d = reasons.length === 0 ? d.where(eb.val(false)) : d.where('d.reason', 'in', reasons);
      }
      conds.push(eb.exists(d));
    }
    if (f.hasAttestation !== null && f.hasAttestation !== undefined) {
      conds.push(f.hasAttestation ? attested(eb, null) : eb.not(attested(eb, null)));
    }
    if (f.attestationPredicateType !== null && f.attestationPredicateType !== undefined) {
      conds.push(attested(eb, f.attestationPredicateType));
    }
    if (f.missingAttestationPredicateType !== null && f.missingAttestationPredicateType !== undefined) {
      conds.push(eb.not(attested(eb, f.missingAttestationPredicateType)));
    }
    return eb.and(conds);
  });
}

/**
 * One page of images in a scope, newest manifest first, narrowed by a filter: one statement, the
 * image rows included (no second round trip for them).
 */
export async function pageImages(db: Kysely<DB>, scope: ImageScope, filter: ImageFilter, first: number, after: string | null): Promise<Page<Image>> {
  const rows = await filtered(scoped(db, scope, after), filter)
    .select(imageColumns)
    .orderBy('m.id', 'desc')
    .limit(first + 1)
    .execute();
  return page(rows as Image[], first);
}

export async function countImages(db: Kysely<DB>, scope: ImageScope, filter: ImageFilter): Promise<number> {
  const row = await filtered(scoped(db, scope, null), filter)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Images an identity signed (verified, not withdrawn), newest manifest first; within a registry and/or repository if given. */
export function pageSignedBy(
  db: Kysely<DB>,
  identityId: string,
  opts: { first: number; after: string | null; registry: string | null; repository: string | null },
): Promise<Page<Image>> {
  return pageImages(db, { kind: 'identity', identityId, registry: opts.registry, repository: opts.repository }, { policyVersion: '' }, opts.first, opts.after);
}

/**
 * The repositories of `registries` that hold a manifest with `digest` (not deleted): the images a
 * signature kept in a signatures repository (cosign's `COSIGN_REPOSITORY`) may be about.
 */
export async function repositoriesHolding(db: Kysely<DB>, registries: readonly string[], digest: Digest, limit = 100): Promise<{ registry: string; repository: string }[]> {
  if (registries.length === 0) {
    return [];
  }
  return await db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['g.host as registry', 'r.name as repository'])
    .where('m.digest', '=', digest)
    .where('m.deleted_at', 'is', null)
    .where('g.host', 'in', registries)
    .orderBy('g.host')
    .orderBy('r.name')
    .limit(limit)
    .execute();
}
