import { type Kysely, sql } from 'kysely';
import { type AdmissionOutcome, type AdmissionResult, type AdmittedImage, decidingReason } from '../../domain/admission.ts';
import { formatImageReference, parseImageReference } from '../../domain/image-ref.ts';
import type { DB } from '../schema.generated.ts';
import { page, type Page } from './fragments.ts';

// The admission record (see migrations: admission_records): every AdmissionReview Signet answered,
// written in batches by the API role and pruned after the retention.

/** A recorded admission request, as read back. */
export interface AdmissionRecord extends AdmissionOutcome {
  readonly id: string;
  readonly recordedAt: Date;
  /** The reason that decided the request (see {@link decidingReason}). */
  readonly reason: string;
}

export interface AdmissionFilter {
  readonly namespace?: string | null;
  readonly result?: AdmissionResult | null;
  /** Any image's reason. */
  readonly reason?: string | null;
  /** An image as written, its normalised reference, its repository (`registry/path`) or its digest. */
  readonly image?: string | null;
  /** Admitted at or after. */
  readonly since?: Date | null;
  /** Admitted before. */
  readonly until?: Date | null;
}

const REASON_KEY = 'reason:';

/** Parsed forms of the images seen lately: a cluster admits the same few images over and over. */
const parsedForms = new Map<string, readonly string[]>();
const PARSED_FORMS_MAX = 10_000;

/** An image as written, normalised, and its repository (`registry/path`). */
function referenceForms(image: string): readonly string[] {
  let forms = parsedForms.get(image);
  if (forms === undefined) {
    try {
      const ref = parseImageReference(image);
      forms = [image, formatImageReference(ref), `${ref.registry}/${ref.repository}`];
    } catch {
      // An invalid reference is still found as written.
      forms = [image];
    }
    if (parsedForms.size >= PARSED_FORMS_MAX) {
      parsedForms.clear();
    }
    parsedForms.set(image, forms);
  }
  return forms;
}

/** The forms an image is found by: as written, normalised, its repository, its digest. */
function imageKeys(image: string, digest: string | null): string[] {
  return digest === null ? [...referenceForms(image)] : [...referenceForms(image), digest];
}

/** What the image filter and the reason filter match (one GIN index serves both). */
export function searchKeys(images: readonly AdmittedImage[]): string[] {
  return [...new Set(images.flatMap((i) => [...imageKeys(i.image, i.digest), `${REASON_KEY}${i.reason}`]))];
}

/** What an image filter value matches: as given, and normalised when it is a reference. */
function filterKeys(image: string): string[] {
  try {
    return [...new Set([image, formatImageReference(parseImageReference(image))])];
  } catch {
    return [image];
  }
}

/** Rows as one JSON parameter: the statement stays the same whatever the batch size (no per-value binding to build). */
function batchJson(outcomes: readonly AdmissionOutcome[]): string {
  return JSON.stringify(
    outcomes.map((o) => ({
      at: o.at,
      uid: o.uid,
      namespace: o.namespace,
      kind: o.kind,
      name: o.name,
      operation: o.operation,
      username: o.user,
      result: o.result,
      reason: decidingReason(o),
      break_glass: o.breakGlass,
      images: o.images,
      search_keys: searchKeys(o.images),
    })),
  );
}

/** Inserts a batch of admission outcomes in one statement; resolves to how many were written. */
export async function insertMany(db: Kysely<DB>, outcomes: readonly AdmissionOutcome[]): Promise<number> {
  if (outcomes.length === 0) {
    return 0;
  }
  const result = await sql`
    INSERT INTO admission_records (at, uid, namespace, kind, name, operation, username, result, reason, break_glass, images, search_keys)
    SELECT at, uid, namespace, kind, name, operation, username, result, reason, break_glass, images, search_keys
    FROM jsonb_to_recordset(${batchJson(outcomes)}::jsonb) AS r(
      at timestamptz, uid text, namespace text, kind text, name text, operation text, username text,
      result text, reason text, break_glass boolean, images jsonb, search_keys text[]
    )`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

function filtered(db: Kysely<DB>, f: AdmissionFilter) {
  let q = db.selectFrom('admission_records');
  if (f.namespace !== null && f.namespace !== undefined) {
    q = q.where('namespace', '=', f.namespace);
  }
  if (f.result !== null && f.result !== undefined) {
    q = q.where('result', '=', f.result);
  }
  if (f.reason !== null && f.reason !== undefined) {
    q = q.where('search_keys', '@>', sql<string[]>`ARRAY[${REASON_KEY + f.reason}]::text[]`);
  }
  if (f.image !== null && f.image !== undefined) {
    q = q.where('search_keys', '&&', sql<string[]>`${filterKeys(f.image)}::text[]`);
  }
  if (f.since !== null && f.since !== undefined) {
    q = q.where('at', '>=', f.since);
  }
  if (f.until !== null && f.until !== undefined) {
    q = q.where('at', '<', f.until);
  }
  return q;
}

/** One page, newest admission first (by `at`, then id); `after` is the id of the previous page's last row. */
export async function pageRecords(db: Kysely<DB>, f: AdmissionFilter, first: number, after: string | null): Promise<Page<AdmissionRecord>> {
  let q = filtered(db, f);
  if (after !== null) {
    q = q.where((eb) =>
      eb(eb.refTuple('at', 'id'), '<', eb.selectFrom('admission_records as c').select(['c.at', 'c.id']).where('c.id', '=', after).$asTuple('at', 'id')),
    );
  }
  const rows = await q
    .select(['id', 'at', 'recorded_at', 'uid', 'namespace', 'kind', 'name', 'operation', 'username', 'result', 'reason', 'break_glass', 'images'])
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(first + 1)
    .execute();
  return page(
    rows.map((r) => ({
      id: r.id,
      at: r.at,
      recordedAt: r.recorded_at,
      uid: r.uid,
      namespace: r.namespace,
      kind: r.kind,
      name: r.name,
      operation: r.operation,
      user: r.username,
      result: r.result as AdmissionResult,
      reason: r.reason,
      breakGlass: r.break_glass,
      images: r.images as unknown as AdmittedImage[],
    })),
    first,
  );
}

export async function countRecords(db: Kysely<DB>, f: AdmissionFilter): Promise<number> {
  const { n } = await filtered(db, f).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(n);
}

/** Deletes up to `batch` records admitted more than `retentionMs` ago, oldest first; resolves to how many went. */
export async function pruneBatch(db: Kysely<DB>, retentionMs: number, batch: number): Promise<number> {
  const deleted = await db
    .deleteFrom('admission_records')
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('admission_records')
        .select('id')
        .where('at', '<', sql<Date>`now() - make_interval(secs => ${retentionMs / 1000})`)
        .orderBy('at')
        .limit(batch),
    )
    .executeTakeFirst();
  return Number(deleted.numDeletedRows);
}
