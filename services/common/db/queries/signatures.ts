import type { Kysely, Transaction } from 'kysely';
import type { SignatureFact } from '../../domain/decision.ts';
import type { Digest } from '../../domain/digest.ts';
import type { SignatureOutcome } from '../../domain/outcome.ts';
import { signatureKind, type SignatureKind, type SignatureRecord } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';
import { withRepository } from './fragments.ts';
import * as identities from './identities.ts';

// Signatures and attestations found on manifests, with their verdicts (one row per distinct
// material per manifest).

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

/** Upserts one signature of a manifest; returns its signer's identity id when it verified. */
export async function upsert(trx: Transaction<DB>, manifestId: string, sig: SignatureRecord): Promise<string | null> {
  const v = sig.verdict;
  // Only a verified signature names its signer in the identities table; a failed one keeps the
  // claimed identity on its own row (subject/issuer) but owns nothing, and so does an attestation.
  const kind = signatureKind(sig.format, v.predicateType);
  const identityId = v.outcome === 'verified' && kind === 'signature' && v.identity !== null ? await identities.ensure(trx, v.identity) : null;
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

/** The verdicts stored for a manifest, signatures and attestations alike (to summarise its status). */
export function verdictsOf(trx: Transaction<DB>, manifestId: string): Promise<{ outcome: SignatureOutcome; reason: string | null; kind: SignatureKind }[]> {
  return trx.selectFrom('signatures').select(['outcome', 'reason', 'kind']).where('manifest_id', '=', manifestId).execute();
}

/**
 * One page of stored signatures in id order, after `afterId`: every one, or only the key-based
 * ones stored as `untrusted_root` (the ones a newly trusted key may verify).
 */
export async function listStored(db: Kysely<DB>, opts: { afterId: string | null; limit: number; onlyUntrustedKeys?: boolean }): Promise<StoredSignature[]> {
  let q = db
    .selectFrom('manifests as m')
    .$call(withRepository)
    .innerJoin('signatures as s', 's.manifest_id', 'm.id')
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

function payloadAnnotations(payload: Buffer): Record<string, unknown> | null {
  try {
    const optional = (JSON.parse(payload.toString('utf8')) as { optional?: unknown }).optional;
    return optional !== null && typeof optional === 'object' && !Array.isArray(optional) ? (optional as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** What the policy reads of each image's signatures (attestations left out), by image id, in id order. */
export async function factsByImageIds(db: Kysely<DB>, imageIds: readonly string[]): Promise<Map<string, SignatureFact[]>> {
  const rows = await db
    .selectFrom('signatures as s')
    .leftJoin('identities as i', 'i.id', 's.identity_id')
    .select(['s.manifest_id', 's.outcome', 's.reason', 's.subject', 's.issuer', 'i.kind', 's.claims', 's.key_fingerprint', 's.rekor_log_index', 's.payload'])
    .where('s.manifest_id', 'in', [...imageIds])
    // Attestations say something about an image; only signatures vouch for it.
    .where('s.kind', '=', 'signature')
    .orderBy('s.id')
    .execute();
  const byImage = new Map<string, SignatureFact[]>();
  for (const s of rows) {
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
    byImage.set(s.manifest_id, [...(byImage.get(s.manifest_id) ?? []), fact]);
  }
  return byImage;
}
