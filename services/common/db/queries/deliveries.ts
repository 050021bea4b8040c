import { createHash } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DB } from '../schema.generated.ts';
import { page, type Page } from './fragments.ts';

export interface DeliveryRecord {
  readonly source: string;
  readonly remoteAddr: string | null;
  readonly contentType: string | null;
  readonly statusCode: number;
  /** What Signet did, e.g. `queued 1, ignored 2`. */
  readonly result: string;
  readonly eventCount: number;
  readonly jobIds: readonly string[];
  readonly payload: string;
}

/** How a delivery was recorded: a row of its own, or a redelivery counted on the row of its first receipt. */
export interface Recorded {
  readonly id: string;
  /** How many times this source has sent this body, this receipt included. */
  readonly receivedCount: number;
}

/** The sha256 (hex) a delivery's body is known by: of its payload as stored, in UTF-8. */
export function payloadSha256(payload: string): string {
  return createHash('sha256').update(payload, 'utf8').digest('hex');
}

/**
 * Records a webhook delivery exactly as received, once per (source, body): a body the source sent
 * before (a retry, a replay) only counts on the row that recorded it first (`received_count`,
 * `last_received_at`), so redeliveries cannot grow the table. The table refuses any other update.
 */
export async function record(db: Kysely<DB> | Transaction<DB>, d: DeliveryRecord): Promise<Recorded> {
  return (await recordMany(db, [d]))[0]!;
}

/**
 * Records several deliveries as {@link record} records each, in one statement: one round trip and,
 * outside a transaction, one commit for all of them — all recorded or none. A body that comes more
 * than once in `ds` is one row counted that many times (one statement cannot touch a row twice).
 * Resolves to each delivery's row, in the order of `ds`.
 */
export async function recordMany(db: Kysely<DB> | Transaction<DB>, ds: readonly DeliveryRecord[]): Promise<Recorded[]> {
  const keys = ds.map((d) => `${d.source}\n${payloadSha256(d.payload)}`);
  const rows = new Map<string, { d: DeliveryRecord; sha: string; count: number }>();
  for (const [i, d] of ds.entries()) {
    const row = rows.get(keys[i]!);
    if (row === undefined) {
      rows.set(keys[i]!, { d, sha: keys[i]!.slice(d.source.length + 1), count: 1 });
    } else {
      row.count += 1;
    }
  }
  if (rows.size === 0) {
    return [];
  }
  const written = await db
    .insertInto('webhook_deliveries')
    .values(
      [...rows.values()].map(({ d, sha, count }) => ({
        source: d.source,
        remote_addr: d.remoteAddr,
        content_type: d.contentType,
        status_code: d.statusCode,
        result: d.result,
        event_count: d.eventCount,
        job_ids: [...d.jobIds],
        payload: d.payload,
        payload_sha256: sha,
        received_count: String(count),
      })),
    )
    .onConflict((oc) =>
      oc.columns(['source', 'payload_sha256']).doUpdateSet({
        received_count: sql`webhook_deliveries.received_count + excluded.received_count`,
        // now() is the transaction's start: a redelivery committing after a later one must not move it back.
        last_received_at: sql`greatest(webhook_deliveries.last_received_at, excluded.last_received_at)`,
      }),
    )
    .returning(['id', 'received_count', 'source', 'payload_sha256'])
    .execute();
  const byKey = new Map(written.map((r) => [`${r.source}\n${r.payload_sha256}`, { id: r.id, receivedCount: Number(r.received_count) }]));
  return keys.map((k) => byKey.get(k)!);
}

/**
 * Deletes up to `batch` deliveries last received more than `retentionMs` ago, in one transaction
 * that declares the cutoff to the table's trigger (the only way a row can be deleted); resolves to
 * how many went. Rows a concurrent redelivery holds are left for the next batch.
 */
export async function pruneBatch(db: Kysely<DB>, retentionMs: number, batch: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT set_config('signet.prune_before', (now() - make_interval(secs => ${retentionMs / 1000}))::text, true)`.execute(trx);
    const deleted = await trx
      .deleteFrom('webhook_deliveries')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('last_received_at', '<', sql<Date>`current_setting('signet.prune_before')::timestamptz`)
          .orderBy('last_received_at')
          .limit(batch)
          .forUpdate()
          .skipLocked(),
      )
      .executeTakeFirst();
    return Number(deleted.numDeletedRows);
  });
}

/** A delivery as recorded, for reading back. */
export interface Delivery {
  readonly id: string;
  readonly source: string;
  readonly receivedAt: Date;
  readonly lastReceivedAt: Date;
  readonly receivedCount: string;
  readonly statusCode: number;
  readonly result: string;
  readonly eventCount: number;
  readonly jobIds: string[];
  readonly payload: string;
}

/** Deliveries whose payload names `digest`, by the GIN index over `signet_payload_digests(payload)`. */
function naming(db: Kysely<DB>, digest: string) {
  return db.selectFrom('webhook_deliveries').where(sql<boolean>`signet_payload_digests(payload) @> ARRAY[${digest}]::text[]`);
}

/** The deliveries whose payload names a digest, newest first. */
export async function pageNaming(db: Kysely<DB>, digest: string, first: number, after: string | null): Promise<Page<Delivery>> {
  let q = naming(db, digest)
    .select([
      'id',
      'source',
      'received_at as receivedAt',
      'last_received_at as lastReceivedAt',
      'received_count as receivedCount',
      'status_code as statusCode',
      'result',
      'event_count as eventCount',
      'job_ids as jobIds',
      'payload',
    ])
    .orderBy('id', 'desc')
    .limit(first + 1);
  if (after !== null) {
    q = q.where('id', '<', after);
  }
  return page(await q.execute(), first);
}

export async function countNaming(db: Kysely<DB>, digest: string): Promise<number> {
  const row = await naming(db, digest).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
