import type { Kysely, Transaction } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import { summarizeOutcomes, type ManifestStatus, type SignatureOutcome } from '../../domain/outcome.ts';
import { signatureKind, type SignatureRecord } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';
import { ensureRepository, lockRepository } from './repositories.ts';

export interface Platform {
  readonly os: string | null;
  readonly architecture: string | null;
  readonly variant: string | null;
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
}

/** An identity that signed in a repository for the first time (see migrations: ownership_changes). */
export interface OwnershipChange {
  readonly id: string;
  /** `initial`: the repository's first signer; `added`: drift — a signer new to a signed repository. */
  readonly kind: 'initial' | 'added';
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly subject: string;
  readonly issuer: string | null;
  readonly previousOwners: number;
}

export interface RecordedIndex {
  readonly manifests: StoredManifest[];
  readonly ownershipChanges: OwnershipChange[];
}

export interface StoredManifest {
  readonly id: string;
  readonly digest: Digest;
  readonly status: ManifestStatus;
  readonly signatureCount: number;
  readonly verifiedCount: number;
}

/**
 * Writes everything one indexing job learnt, in one transaction under the repository lock:
 * manifests (upsert by repository + digest), index children, identities, and signatures (upsert by
 * manifest + material digest: a re-index never duplicates rows, and never forgets a signature it
 * saw before). Each manifest's status is then recomputed from all its stored signatures, and every
 * verified identity new to the repository is recorded as an ownership change.
 */
export async function recordIndexedManifests(
  db: Kysely<DB>,
  registry: string,
  repository: string,
  manifests: readonly IndexedManifest[],
): Promise<RecordedIndex> {
  return db.transaction().execute(async (trx) => {
    await lockRepository(trx, registry, repository);
    const repositoryId = await ensureRepository(trx, registry, repository);
    const ids = new Map<Digest, string>();
    const stored: StoredManifest[] = [];
    const signers = new Map<string, { manifestId: string; digest: Digest; sig: SignatureRecord }>();
    for (const m of manifests) {
      const manifestId = await upsertManifest(trx, repositoryId, m);
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
            platform_os: m.parent.platform?.os ?? null,
            platform_architecture: m.parent.platform?.architecture ?? null,
            platform_variant: m.parent.platform?.variant ?? null,
          })
          .onConflict((oc) => oc.columns(['index_id', 'child_id']).doNothing())
          .execute();
      }
      for (const sig of m.signatures) {
        const identityId = await upsertSignature(trx, manifestId, sig);
        if (identityId !== null && !signers.has(identityId)) {
          signers.set(identityId, { manifestId, digest: m.digest, sig });
        }
      }
      stored.push(await refreshStatus(trx, manifestId, m));
    }
    const ownershipChanges = await recordOwnershipChanges(trx, repositoryId, signers);
    return { manifests: stored, ownershipChanges: ownershipChanges.map((c) => ({ ...c, registry, repository })) };
  });
}

/**
 * Records the identities in `signers` that never signed in the repository before. Runs under the
 * repository lock, so "before" is exact even with concurrent jobs for the same repository.
 */
async function recordOwnershipChanges(
  trx: Transaction<DB>,
  repositoryId: string,
  signers: ReadonlyMap<string, { manifestId: string; digest: Digest; sig: SignatureRecord }>,
): Promise<Omit<OwnershipChange, 'registry' | 'repository'>[]> {
  if (signers.size === 0) {
    return [];
  }
  const owners = (
    await trx.selectFrom('ownership_changes').select('identity_id').where('repository_id', '=', repositoryId).orderBy('id').execute()
  ).map((r) => r.identity_id);
  const known = new Set(owners);
  const changes: Omit<OwnershipChange, 'registry' | 'repository'>[] = [];
  for (const [identityId, { manifestId, digest, sig }] of signers) {
    if (known.has(identityId)) {
      continue;
    }
    const kind = owners.length === 0 ? 'initial' : 'added';
    const { id } = await trx
      .insertInto('ownership_changes')
      .values({ repository_id: repositoryId, identity_id: identityId, manifest_id: manifestId, kind, previous_owner_ids: [...owners] })
      .returning('id')
      .executeTakeFirstOrThrow();
    const identity = sig.verdict.identity;
    changes.push({
      id,
      kind,
      digest,
      subject: identity?.subject ?? '',
      issuer: identity?.issuer ?? null,
      previousOwners: owners.length,
    });
    owners.push(identityId);
    known.add(identityId);
  }
  return changes;
}

async function upsertManifest(trx: Transaction<DB>, repositoryId: string, m: IndexedManifest): Promise<string> {
  const { id } = await trx
    .insertInto('manifests')
    .values({ repository_id: repositoryId, digest: m.digest, media_type: m.mediaType, size: m.size, status: 'unsigned' })
    .onConflict((oc) =>
      // Fetched from the registry just now, so it exists again: a re-push after a delete unmarks it.
      oc.columns(['repository_id', 'digest']).doUpdateSet({ media_type: m.mediaType, size: m.size, indexed_at: new Date(), deleted_at: null }),
    )
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

async function upsertIdentity(trx: Transaction<DB>, sig: SignatureRecord): Promise<string | null> {
  const identity = sig.verdict.identity;
  if (identity === null) {
    return null;
  }
  const inserted = await trx
    .insertInto('identities')
    .values({ kind: identity.kind, subject: identity.subject, issuer: identity.issuer })
    .onConflict((oc) => oc.columns(['subject', 'issuer']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted !== undefined) {
    return inserted.id;
  }
  const existing = await trx
    .selectFrom('identities')
    .select('id')
    .where('subject', '=', identity.subject)
    .where((eb) => (identity.issuer === null ? eb('issuer', 'is', null) : eb('issuer', '=', identity.issuer)))
    .executeTakeFirstOrThrow();
  return existing.id;
}

/** Upserts one signature; returns its signer's identity id when it verified. */
async function upsertSignature(trx: Transaction<DB>, manifestId: string, sig: SignatureRecord): Promise<string | null> {
  const v = sig.verdict;
  // Only a verified signature names its signer in the identities table; a failed one keeps the
  // claimed identity on its own row (subject/issuer) but owns nothing, and so does an attestation.
  const kind = signatureKind(sig.format, v.predicateType);
  const identityId = v.outcome === 'verified' && kind === 'signature' ? await upsertIdentity(trx, sig) : null;
  const verdictColumns = {
    outcome: v.outcome,
    reason: v.reason,
    identity_id: identityId,
    subject: v.identity?.subject ?? null,
    issuer: v.identity?.issuer ?? null,
    claims: JSON.stringify(v.claims),
    key_fingerprint: v.key?.fingerprint ?? null,
    key_source: v.key?.source ?? null,
    key_name: v.key?.name ?? null,
    certificate_fingerprint: v.certificate?.fingerprint ?? null,
    certificate_not_before: v.certificate?.notBefore ?? null,
    certificate_not_after: v.certificate?.notAfter ?? null,
    rekor_log_id: v.rekor?.logId ?? null,
    rekor_log_index: v.rekor?.logIndex ?? null,
    rekor_integrated_time: v.rekor?.integratedTime ?? null,
    tsa_time: v.tsaTime,
    predicate_type: v.predicateType,
    kind,
    trust_root_version: v.trustRootVersion,
    verified_at: new Date(),
  };
  await trx
    .insertInto('signatures')
    .values({
      manifest_id: manifestId,
      material_digest: sig.materialDigest,
      format: sig.format,
      source_digest: sig.sourceDigest,
      layer_index: sig.layerIndex,
      layer_digest: sig.layerDigest,
      payload: sig.payload,
      subject_bytes: sig.subjectBytes,
      annotations: JSON.stringify(sig.layerAnnotations),
      ...verdictColumns,
    })
    .onConflict((oc) => oc.columns(['manifest_id', 'material_digest']).doUpdateSet(verdictColumns))
    .execute();
  return identityId;
}

async function refreshStatus(trx: Transaction<DB>, manifestId: string, m: IndexedManifest): Promise<StoredManifest> {
  const all = await trx.selectFrom('signatures').select(['outcome', 'reason', 'kind']).where('manifest_id', '=', manifestId).execute();
  // Attestations are recorded, not counted: an image with only attestations is unsigned.
  const rows = all.filter((r) => r.kind === 'signature');
  const outcomes = rows.map((r) => r.outcome);
  let status = summarizeOutcomes(outcomes);
  let reason = status === 'verified' || status === 'unsigned' ? null : (rows.find((r) => r.outcome === status)?.reason ?? null);
  if (rows.length === 0 && m.discoveryError !== null) {
    status = 'malformed';
    reason = m.discoveryError;
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
export async function markManifestDeleted(
  trx: Transaction<DB>,
  repositoryId: string,
  digest: Digest,
  at: Date,
): Promise<number> {
  const result = await trx
    .updateTable('manifests')
    .set({ deleted_at: at })
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A stored signature with what re-verifying it needs (its material), and its current verdict's key facts. */
export interface StoredSignature extends Omit<SignatureRecord, 'verdict'> {
  readonly id: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly outcome: SignatureOutcome;
  readonly trustRootVersion: string | null;
}

/**
 * One page of stored signatures in id order, after `afterId`: every one, or only the key-based
 * ones stored as `untrusted_root` (the ones a newly trusted key may verify).
 */
export async function listStoredSignatures(
  db: Kysely<DB>,
  opts: { afterId: string | null; limit: number; onlyUntrustedKeys?: boolean },
): Promise<StoredSignature[]> {
  let q = db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select([
      's.id',
      'g.host',
      'r.name',
      'm.digest',
      'm.media_type',
      'm.size',
      's.format',
      's.material_digest',
      's.source_digest',
      's.layer_index',
      's.layer_digest',
      's.payload',
      's.subject_bytes',
      's.annotations',
      's.outcome',
      's.trust_root_version',
    ])
    .orderBy('s.id')
    .limit(opts.limit);
  if (opts.afterId !== null) {
    q = q.where('s.id', '>', opts.afterId);
  }
  if (opts.onlyUntrustedKeys === true) {
    q = q.where('s.outcome', '=', 'untrusted_root').where('s.certificate_fingerprint', 'is', null);
  }
  const rows = await q.execute();
  return rows.map((r) => ({
    id: r.id,
    registry: r.host,
    repository: r.name,
    digest: r.digest,
    mediaType: r.media_type,
    size: Number(r.size),
    format: r.format,
    materialDigest: r.material_digest,
    sourceDigest: r.source_digest,
    layerIndex: r.layer_index,
    layerDigest: r.layer_digest,
    payload: r.payload,
    subjectBytes: r.subject_bytes,
    layerAnnotations: r.annotations,
    outcome: r.outcome,
    trustRootVersion: r.trust_root_version,
  }));
}
