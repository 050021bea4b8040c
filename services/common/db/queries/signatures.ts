import { sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely';
import { statementOf } from '../../domain/attestation.ts';
import type { AttestationFact, SignatureFact } from '../../domain/decision.ts';
import type { Digest } from '../../domain/digest.ts';
import type { SignatureOutcome } from '../../domain/outcome.ts';
import { signatureKind, type SignatureFormat, type SignerIdentity, type SignatureKind, type SignatureRecord, type SignatureSources, unprovenVerdict, type WithdrawalCause } from '../../domain/signature.ts';
import { storableSignature, storableText, UNSTORABLE_REASON } from '../../domain/storable.ts';
import type { DB } from '../schema.generated.ts';
import { page, withRepository, type Page } from './fragments.ts';
import * as identities from './identities.ts';

// Signatures and attestations found on manifests, with their verdicts (one row per distinct
// material per manifest). A withdrawn one (its artifact deleted, or no longer what its tag or the
// referrers name) keeps its row and counts for nothing: no decision, no ownership.

/** A stored signature or attestation and its verdict. */
export interface Signature {
  readonly id: string;
  readonly manifestId: string;
  readonly format: SignatureFormat;
  readonly kind: SignatureKind;
  readonly predicateType: string | null;
  readonly outcome: SignatureOutcome;
  readonly reason: string | null;
  /** The verified signer's identity row; null unless it verified (a failed one only claims `subject`). */
  readonly identityId: string | null;
  readonly subject: string | null;
  readonly issuer: string | null;
  readonly claims: Readonly<Record<string, string>>;
  readonly keyFingerprint: string | null;
  readonly keySource: string | null;
  readonly keyName: string | null;
  readonly certificateFingerprint: string | null;
  readonly certificateNotBefore: Date | null;
  readonly certificateNotAfter: Date | null;
  readonly rekorLogId: string | null;
  readonly rekorLogIndex: string | null;
  readonly rekorIntegratedTime: Date | null;
  readonly tsaTime: Date | null;
  readonly trustRootVersion: string | null;
  readonly sourceDigest: Digest;
  readonly layerDigest: string;
  readonly firstSeenAt: Date;
  readonly verifiedAt: Date;
  /** When it was made: Rekor's integrated time, else a TSA's, else when Signet first saw it. */
  readonly signedAt: Date;
  /** When Signet saw its artifact gone, and how; null while it counts. */
  readonly withdrawnAt: Date | null;
  readonly withdrawnBy: WithdrawalCause | null;
  /** The verified signer's identity, read along with it (no second query). */
  readonly signer: identities.Identity | null;
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
  readonly reason: string | null;
  readonly trustRootVersion: string | null;
}

/** A claim to look for: `claims @> {name: value}` (the GIN index on claims answers it). */
export interface ClaimFilter {
  readonly name: string;
  readonly value: string;
  readonly verifiedOnly: boolean;
}

/**
 * Upserts one signature of a manifest; returns its signer's identity id when it verified. What is
 * stored passes {@link storableSignature} first (hostile text: `malformed`, or sanitised). Should
 * Postgres still refuse the row itself (a data exception or a check constraint: retrying cannot
 * help), the signature is recorded `malformed` with Postgres's reason instead, so one poisoned
 * artifact never fails the image's whole write; any other error (a lost connection) propagates.
 *
 * Not `careful`: no savepoint (two statements fewer), so a refused row fails the transaction with
 * {@link isRefusedRow}'s error; the caller runs the transaction again, carefully.
 */
export async function upsert(trx: Transaction<DB>, manifestId: string, found: SignatureRecord, careful = true): Promise<string | null> {
  const sig = storableSignature(found);
  if (!careful) {
    return write(trx, manifestId, sig);
  }
  await sql`SAVEPOINT signature_upsert`.execute(trx);
  try {
    const identityId = await write(trx, manifestId, sig);
    await sql`RELEASE SAVEPOINT signature_upsert`.execute(trx);
    return identityId;
  } catch (err) {
    if (!isRefusedRow(err)) {
      throw err;
    }
    await sql`ROLLBACK TO SAVEPOINT signature_upsert`.execute(trx);
    const why = storableText(err instanceof Error ? err.message : String(err)).slice(0, 300);
    await write(trx, manifestId, {
      ...sig,
      layerAnnotations: {},
      verdict: unprovenVerdict('malformed', `${UNSTORABLE_REASON}the ledger refused it (${why}); recorded as malformed instead of ${sig.verdict.outcome}`, sig.verdict.trustRootVersion),
    });
    return null;
  }
}

/** Postgres refused the row's values (SQLSTATE class 22, check or not-null violation), not the connection. */
export function isRefusedRow(err: unknown): boolean {
  const code = err !== null && typeof err === 'object' && 'code' in err ? err.code : undefined;
  return typeof code === 'string' && (code.startsWith('22') || code === '23514' || code === '23502');
}

async function write(trx: Transaction<DB>, manifestId: string, sig: SignatureRecord): Promise<string | null> {
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
    // Where it was found now: the same signature can move to another artifact (a re-pushed `.sig`).
    .onConflict((oc) => oc.columns(['manifest_id', 'material_digest']).doUpdateSet({ ...verdictColumns, source_digest: sig.sourceDigest, layer_index: sig.layerIndex }))
    .execute();
  return identityId;
}

/**
 * Brings a manifest's withdrawals in line with what one discovery found (`sources`, for the
 * signatures `found`), after they were upserted:
 * - a stored signature found where clients look (its material, or its artifact, among the listed
 *   ones) is un-withdrawn, unless it was withdrawn after the discovery began (a stale view);
 * - after a complete discovery, a current one found nowhere (neither its material nor its artifact
 *   was read) is withdrawn, at `observation.at`, by `observation.by`;
 * - one read only from a pushed artifact keeps its state (a new row starts current).
 * Partial discoveries (and `sources` null: not everything was rediscovered) withdraw nothing.
 * Returns the material digests of the manifest's withdrawn signatures, and how many this withdrew.
 */
export async function reconcileWithdrawals(
  trx: Transaction<DB>,
  manifestId: string,
  found: readonly SignatureRecord[],
  sources: SignatureSources | null,
  observation: { readonly at: Date; readonly by: WithdrawalCause },
): Promise<{ withdrawn: Set<Digest>; newlyWithdrawn: number }> {
  let newlyWithdrawn = 0;
  if (sources !== null) {
    const listed = new Set(sources.listed);
    const listedMaterials = found.filter((s) => listed.has(s.sourceDigest)).map((s) => s.materialDigest);
    if (listed.size > 0) {
      await trx
        .updateTable('signatures')
        .set({ withdrawn_at: null, withdrawn_by: null })
        .where('manifest_id', '=', manifestId)
        .where('withdrawn_at', '<', observation.at)
        .where((eb) => eb.or([eb('source_digest', 'in', [...listed]), ...(listedMaterials.length > 0 ? [eb('material_digest', 'in', listedMaterials)] : [])]))
        .execute();
    }
    if (sources.complete) {
      const read = [...sources.listed, ...sources.pushed];
      const materials = found.map((s) => s.materialDigest);
      let q = trx
        .updateTable('signatures')
        .set({ withdrawn_at: observation.at, withdrawn_by: observation.by })
        .where('manifest_id', '=', manifestId)
        .where('withdrawn_at', 'is', null);
      if (read.length > 0) {
        q = q.where('source_digest', 'not in', read);
      }
      if (materials.length > 0) {
        q = q.where('material_digest', 'not in', materials);
      }
      newlyWithdrawn = Number((await q.executeTakeFirst()).numUpdatedRows);
    }
  }
  const rows = await trx.selectFrom('signatures').select('material_digest').where('manifest_id', '=', manifestId).where('withdrawn_at', 'is not', null).execute();
  return { withdrawn: new Set(rows.map((r) => r.material_digest)), newlyWithdrawn };
}

/** The verdicts of a manifest's current (not withdrawn) signatures and attestations (to summarise its status). */
export function verdictsOf(trx: Transaction<DB>, manifestId: string): Promise<{ outcome: SignatureOutcome; reason: string | null; kind: SignatureKind }[]> {
  return trx.selectFrom('signatures').select(['outcome', 'reason', 'kind']).where('manifest_id', '=', manifestId).where('withdrawn_at', 'is', null).execute();
}

/**
 * The images in a repository whose signatures or attestations came from `source` (a `.sig`/`.att`
 * manifest or a referrer): what a delete of that artifact is about.
 */
export async function subjectsOfSource(db: Kysely<DB>, registry: string, repository: string, source: Digest): Promise<Digest[]> {
  const rows = await db
    .selectFrom('manifests as m')
    .$call(withRepository)
    .innerJoin('signatures as s', 's.manifest_id', 'm.id')
    .select('m.digest')
    .distinct()
    .where('s.source_digest', '=', source)
    .where('g.host', '=', registry)
    .where('r.name', '=', repository)
    .limit(100)
    .execute();
  return rows.map((r) => r.digest);
}

/** What a signature is read with (`s` a signature, `i` its verified signer), in `selectSignatures`. */
const SIGNATURE_SELECTION = [
  's.id',
  's.manifest_id',
  's.format',
  's.outcome',
  's.reason',
  's.identity_id',
  's.subject',
  's.issuer',
  's.claims',
  's.key_fingerprint',
  's.key_source',
  's.key_name',
  's.certificate_fingerprint',
  's.certificate_not_before',
  's.certificate_not_after',
  's.rekor_log_id',
  's.rekor_log_index',
  's.rekor_integrated_time',
  's.tsa_time',
  's.kind',
  's.predicate_type',
  's.trust_root_version',
  's.source_digest',
  's.layer_digest',
  's.first_seen_at',
  's.verified_at',
  's.withdrawn_at',
  's.withdrawn_by',
  'i.kind as identity_kind',
  'i.first_seen_at as identity_first_seen_at',
] as const;

/** A selection's result column: its alias, else its column. */
type ColumnName<S extends string> = S extends `${string} as ${infer A}` ? A : S extends `${string}.${infer C}` ? C : S;

/**
 * A signature row's columns by name: to select them from `selectSignatures` used as a subquery by
 * name rather than `x.*`, since a statement with `*` is never prepared (see prepared.ts).
 */
export const SIGNATURE_ROW_COLUMNS = SIGNATURE_SELECTION.map((c) => (c.includes(' as ') ? c.split(' as ')[1]! : c.slice(c.indexOf('.') + 1)) as ColumnName<typeof c>);

/** Signatures joined to their verified signers (`s`, `i`); the image module reads them laterally beside an image. */
export function selectSignatures(db: Kysely<DB>) {
  return db.selectFrom('signatures as s').leftJoin('identities as i', 'i.id', 's.identity_id').select(SIGNATURE_SELECTION);
}

export type SignatureRow = Awaited<ReturnType<ReturnType<typeof selectSignatures>['execute']>>[number];

export function toSignature(r: SignatureRow): Signature {
  return {
    id: r.id,
    manifestId: r.manifest_id,
    format: r.format,
    kind: r.kind,
    predicateType: r.predicate_type,
    outcome: r.outcome,
    reason: r.reason,
    identityId: r.identity_id,
    subject: r.subject,
    issuer: r.issuer,
    claims: r.claims,
    keyFingerprint: r.key_fingerprint,
    keySource: r.key_source,
    keyName: r.key_name,
    certificateFingerprint: r.certificate_fingerprint,
    certificateNotBefore: r.certificate_not_before,
    certificateNotAfter: r.certificate_not_after,
    rekorLogId: r.rekor_log_id,
    rekorLogIndex: r.rekor_log_index,
    rekorIntegratedTime: r.rekor_integrated_time,
    tsaTime: r.tsa_time,
    trustRootVersion: r.trust_root_version,
    sourceDigest: r.source_digest,
    layerDigest: r.layer_digest,
    firstSeenAt: r.first_seen_at,
    verifiedAt: r.verified_at,
    signedAt: r.rekor_integrated_time ?? r.tsa_time ?? r.first_seen_at,
    withdrawnAt: r.withdrawn_at,
    withdrawnBy: r.withdrawn_by,
    signer:
      r.identity_id !== null && r.identity_kind !== null && r.identity_first_seen_at !== null && r.subject !== null
        ? { id: r.identity_id, kind: r.identity_kind, subject: r.subject, issuer: r.issuer, firstSeenAt: r.identity_first_seen_at }
        : null,
  };
}

/** Every signature of each image, withdrawn ones too, with its verified signer's identity (joined: no second query). */
export async function byImageIds(db: Kysely<DB>, imageIds: readonly string[]): Promise<Signature[]> {
  return (await selectSignatures(db).where('s.manifest_id', 'in', imageIds).orderBy('s.id').execute()).map(toSignature);
}

function hasClaim(f: ClaimFilter) {
  return (eb: ExpressionBuilder<DB & { s: DB['signatures'] }, 's'>) =>
    eb.and([
      eb(sql`s.claims`, '@>', sql`${JSON.stringify({ [f.name]: f.value })}::jsonb`),
      ...(f.verifiedOnly ? [eb('s.outcome', '=', 'verified')] : []),
    ]);
}

/** Signatures and attestations carrying a claim, newest first. */
export async function pageWithClaim(db: Kysely<DB>, f: ClaimFilter, first: number, after: string | null): Promise<Page<Signature>> {
  let q = selectSignatures(db).where(hasClaim(f)).orderBy('s.id', 'desc').limit(first + 1);
  if (after !== null) {
    q = q.where('s.id', '<', after);
  }
  return page((await q.execute()).map(toSignature), first);
}

export async function countWithClaim(db: Kysely<DB>, f: ClaimFilter): Promise<number> {
  const row = await db
    .selectFrom('signatures as s')
    .where(hasClaim(f))
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
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
      's.reason',
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
    reason: r.reason,
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

/**
 * What the policy reads of each image's current signatures (attestations and withdrawn signatures
 * left out), by image id, in id order, and how many of its signatures were withdrawn.
 */
export async function factsByImageIds(db: Kysely<DB>, imageIds: readonly string[]): Promise<{ facts: Map<string, SignatureFact[]>; withdrawn: Map<string, number> }> {
  const rows = await db
    .selectFrom('signatures as s')
    .leftJoin('identities as i', 'i.id', 's.identity_id')
    .select(['s.manifest_id', 's.outcome', 's.reason', 's.subject', 's.issuer', 'i.kind', 's.claims', 's.key_fingerprint', 's.rekor_log_index', 's.payload', 's.withdrawn_at'])
    .where('s.manifest_id', 'in', [...imageIds])
    // Attestations say something about an image; only signatures vouch for it.
    .where('s.kind', '=', 'signature')
    .orderBy('s.id')
    .execute();
  const byImage = new Map<string, SignatureFact[]>();
  const withdrawn = new Map<string, number>();
  for (const s of rows) {
    if (s.withdrawn_at !== null) {
      // Its artifact is gone from the registry: it vouches for nothing any more.
      withdrawn.set(s.manifest_id, (withdrawn.get(s.manifest_id) ?? 0) + 1);
      continue;
    }
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
  return { facts: byImage, withdrawn };
}

/** A certificate's SAN is an email or a URI; anything else signed with a key (its subject is the fingerprint). */
function attestationSignerKind(keySource: string | null, subject: string): SignerIdentity['kind'] {
  if (keySource !== 'certificate') {
    return 'key';
  }
  return subject.includes('@') && !subject.includes('://') ? 'email' : 'uri';
}

/**
 * What attestation requirements read of each image's current attestations of the given predicate
 * types, by image id: verdict, signer, and the in-toto statement from the stored material (no
 * registry call). Withdrawn ones are left out, as for signatures.
 */
export async function attestationFactsByImageIds(db: Kysely<DB>, imageIds: readonly string[], predicateTypes: readonly string[]): Promise<Map<string, AttestationFact[]>> {
  const byImage = new Map<string, AttestationFact[]>();
  if (imageIds.length === 0 || predicateTypes.length === 0) {
    return byImage;
  }
  const rows = await db
    .selectFrom('signatures as s')
    .select([
      's.manifest_id',
      's.format',
      's.predicate_type',
      's.outcome',
      's.reason',
      's.subject',
      's.issuer',
      's.key_fingerprint',
      's.key_source',
      's.claims',
      's.rekor_log_index',
      's.rekor_integrated_time',
      's.tsa_time',
      's.first_seen_at',
      's.payload',
    ])
    .where('s.manifest_id', 'in', [...imageIds])
    .where('s.kind', '=', 'attestation')
    .where('s.predicate_type', 'in', [...predicateTypes])
    .where('s.withdrawn_at', 'is', null)
    .orderBy('s.id')
    .execute();
  for (const s of rows) {
    const verified = s.outcome === 'verified';
    const fact: AttestationFact = {
      predicateType: s.predicate_type!,
      outcome: s.outcome,
      reason: s.reason,
      // Attestations own nothing (no identity row); a verified one still proves who signed it.
      identity: !verified || s.subject === null ? null : { kind: attestationSignerKind(s.key_source, s.subject), subject: s.subject, issuer: s.issuer },
      claims: s.claims,
      keyFingerprint: s.key_fingerprint,
      tlog: s.rekor_log_index !== null,
      signedAt: s.rekor_integrated_time ?? s.tsa_time ?? s.first_seen_at,
      statement: verified ? statementOf(s.format, s.payload) : null,
    };
    byImage.set(s.manifest_id, [...(byImage.get(s.manifest_id) ?? []), fact]);
  }
  return byImage;
}
