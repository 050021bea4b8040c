import type { Kysely, Transaction } from 'kysely';
import type { DB } from '../schema.generated.ts';

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

/** Appends a webhook delivery exactly as received (the table rejects updates and deletes). */
export async function record(db: Kysely<DB> | Transaction<DB>, d: DeliveryRecord): Promise<string> {
  const { id } = await db
    .insertInto('webhook_deliveries')
    .values({
      source: d.source,
      remote_addr: d.remoteAddr,
      content_type: d.contentType,
      status_code: d.statusCode,
      result: d.result,
      event_count: d.eventCount,
      job_ids: [...d.jobIds],
      payload: d.payload,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}
