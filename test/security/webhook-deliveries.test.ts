// Webhook deliveries cannot grow the ledger without bound: the same body sent again (distribution's
// retries, a replay) is counted on one row instead of stored again, the worker prunes deliveries
// older than SIGNET_DELIVERY_RETENTION, and the table still refuses every other update or delete.
import { createHash } from 'node:crypto';
import type { Job } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../services/common/logger.ts';
import { readFixture } from '../helpers/fixtures.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';

const PUSH = readFixture('webhooks/distribution/v3-push-envelope.events.v2+json.json');
const EVENTS_V2 = 'application/vnd.docker.distribution.events.v2+json';
const COPIES = 2_000;

let db: TestDb;
let ingest: TestSignet;

beforeAll(async () => {
  db = await createTestDb();
  ingest = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'ingest', SIGNET_ALLOWED_REGISTRIES: 'registrycluster.local' });
});

afterAll(async () => {
  await ingest?.stop();
  await db?.drop();
});

function post(payload: string | Buffer) {
  return ingest.app.inject({
    method: 'POST',
    url: '/webhooks/distribution',
    headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': EVENTS_V2 },
    payload,
  });
}

const hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Rows of deliveries whose payload contains `marker`. */
async function rowsWith(marker: string) {
  const { rows } = await sql<{ id: string; result: string }>`
    SELECT id, result FROM webhook_deliveries WHERE strpos(payload, ${marker}) > 0 ORDER BY id`.execute(db.db);
  return rows;
}

async function receivedCount(id: string): Promise<number> {
  const { rows } = await sql<{ received_count: string }>`SELECT received_count FROM webhook_deliveries WHERE id = ${id}`.execute(db.db);
  return Number(rows[0]!.received_count);
}

/** The distribution push carrying `marker` as an extra field: a delivery of its own, through ingest. */
function pushMarked(marker: string): string {
  return JSON.stringify({ ...(JSON.parse(PUSH.toString('utf8')) as object), marker });
}

/** A delivery row as if received `ageMs` ago (first and last), straight into the table: inserts are allowed. */
async function insertDelivery(marker: string, ageMs: number, lastAgeMs = ageMs): Promise<void> {
  const payload = JSON.stringify({ events: [], marker });
  await sql`INSERT INTO webhook_deliveries (source, received_at, last_received_at, status_code, result, payload, payload_sha256)
    VALUES ('distribution', now() - make_interval(secs => ${ageMs / 1000}), now() - make_interval(secs => ${lastAgeMs / 1000}), 202, 'queued 0', ${payload}, ${hex(payload)})`.execute(
    db.db,
  );
}

async function markers(prefix: string): Promise<string[]> {
  const { rows } = await sql<{ marker: string }>`
    SELECT payload::jsonb ->> 'marker' AS marker FROM webhook_deliveries WHERE strpos(payload, ${prefix}) > 0 ORDER BY 1`.execute(db.db);
  return rows.map((r) => r.marker);
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('redelivered bodies', () => {
  it(`${COPIES} identical deliveries leave one row counting ${COPIES} and queue one job`, async () => {
    await ingest.queue!.obliterate({ force: true });
    const queued = new Set<string>();
    for (let sent = 0; sent < COPIES; sent += 25) {
      const answers = await Promise.all(Array.from({ length: 25 }, () => post(PUSH)));
      for (const res of answers) {
        expect(res.statusCode).toBe(202);
        for (const id of res.json<{ queued: string[] }>().queued) {
          queued.add(id);
        }
      }
    }
    const rows = await rowsWith('library/test');
    expect(rows).toHaveLength(1);
    expect(await receivedCount(rows[0]!.id)).toBe(COPIES);
    expect(queued.size).toBe(1);
    const counts = await ingest.queue!.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    const { rows: times } = await sql<{ ordered: boolean }>`
      SELECT last_received_at >= received_at AS ordered FROM webhook_deliveries WHERE id = ${rows[0]!.id}`.execute(db.db);
    expect(times).toEqual([{ ordered: true }]);
  });

  it('a body that differs by one byte is a delivery of its own', async () => {
    const before = (await rowsWith('library/test')).length;
    expect((await post(`${PUSH.toString('utf8')} `)).statusCode).toBe(202);
    expect(await rowsWith('library/test')).toHaveLength(before + 1);
  });
});

describe('the append-only table', () => {
  let id: string;
  beforeAll(async () => {
    expect((await post(pushMarked('tamper-target'))).statusCode).toBe(202);
    id = (await rowsWith('tamper-target'))[0]!.id;
  });

  it('allows only counting a redelivery', async () => {
    await sql`UPDATE webhook_deliveries SET received_count = received_count + 2, last_received_at = now() WHERE id = ${id}`.execute(db.db);
    expect(await receivedCount(id)).toBe(3);
  });

  const updates: [string, (id: string) => ReturnType<typeof sql>][] = [
    ['the payload', (id) => sql`UPDATE webhook_deliveries SET payload = '{"events":[]}' WHERE id = ${id}`],
    ['the result', (id) => sql`UPDATE webhook_deliveries SET result = 'queued 1' WHERE id = ${id}`],
    ['the source', (id) => sql`UPDATE webhook_deliveries SET source = 'harbor' WHERE id = ${id}`],
    ['the payload with the count', (id) => sql`UPDATE webhook_deliveries SET payload = '{}', received_count = received_count + 1 WHERE id = ${id}`],
    [
      'the first receipt with the count',
      (id) => sql`UPDATE webhook_deliveries SET received_at = received_at - interval '1 day', last_received_at = now(), received_count = received_count + 1 WHERE id = ${id}`,
    ],
    ['the count downwards', (id) => sql`UPDATE webhook_deliveries SET received_count = 1, last_received_at = now() WHERE id = ${id}`],
    ['the last receipt backwards', (id) => sql`UPDATE webhook_deliveries SET received_count = received_count + 1, last_received_at = last_received_at - interval '1 hour' WHERE id = ${id}`],
  ];
  it.each(updates)('refuses an update of %s', async (_what, update) => {
    await expect(update(id).execute(db.db)).rejects.toThrow(/append-only/);
  });

  it('refuses a delete, a delete of a row younger than the declared cutoff, and TRUNCATE', async () => {
    await expect(sql`DELETE FROM webhook_deliveries WHERE id = ${id}`.execute(db.db)).rejects.toThrow(/append-only/);
    await expect(
      db.db.transaction().execute(async (trx) => {
        await sql`SELECT set_config('signet.prune_before', (now() - interval '1 day')::text, true)`.execute(trx);
        await sql`DELETE FROM webhook_deliveries WHERE id = ${id}`.execute(trx);
      }),
    ).rejects.toThrow(/append-only/);
    await expect(sql`TRUNCATE webhook_deliveries`.execute(db.db)).rejects.toThrow(/append-only/);
    expect(await rowsWith('tamper-target')).toEqual([{ id, result: 'queued 1, ignored 2' }]);
  });
});

describe('retention', () => {
  // First in this block: every other row is younger than an hour until the next test adds old ones.
  it('prunes in bounded batches, each its own transaction', async () => {
    for (let i = 0; i < 5; i++) {
      await insertDelivery(`batch-${i}`, 2 * HOUR);
    }
    const { pruneDeliveriesJob } = await import('../../services/worker/jobs/prune-deliveries.job.ts');
    const prune = pruneDeliveriesJob({ db: db.db, retentionMs: HOUR, batch: 2 });
    const job = { id: 'test', name: 'prune-deliveries', data: {}, attemptsMade: 0, timestamp: Date.now() } as unknown as Job;
    const outcome = await prune.run(job, createLogger({ logLevel: 'silent' }), new AbortController().signal, undefined);
    expect(outcome).toEqual({ deleted: 5, batches: 3, complete: true });
    expect(await markers('batch-')).toEqual([]);
    expect(await rowsWith('tamper-target')).toHaveLength(1);
  });

  it('the worker prunes deliveries last received before SIGNET_DELIVERY_RETENTION and keeps younger ones', async () => {
    // More old rows than one batch of the prune takes, so the pass has to go round.
    for (let i = 0; i < 1_100; i += 100) {
      await sql`INSERT INTO webhook_deliveries (source, received_at, last_received_at, status_code, result, payload, payload_sha256)
        SELECT 'distribution', now() - interval '40 days', now() - interval '40 days', 202, 'queued 0', p, encode(sha256(convert_to(p, 'UTF8')), 'hex')
        FROM (SELECT json_build_object('events', '[]'::json, 'marker', 'old-bulk-' || n)::text AS p FROM generate_series(${i}::int, ${i + 99}::int) AS n) AS s`.execute(db.db);
    }
    await insertDelivery('retention-old', 31 * DAY);
    await insertDelivery('retention-young', 29 * DAY);
    // First received long ago, but sent again yesterday: still within the retention.
    await insertDelivery('retention-redelivered', 90 * DAY, DAY);
    const worker = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_RECONCILE_INTERVAL: '0', SIGNET_DELIVERY_RETENTION: '30d' });
    try {
      await eventually(async () => ((await markers('old-bulk-')).length === 0 && (await markers('retention-old')).length === 0 ? true : undefined), 'the old deliveries pruned');
    } finally {
      await worker.stop();
    }
    expect(await markers('retention-')).toEqual(['retention-redelivered', 'retention-young']);
    // The three bodies ingest recorded a moment ago are young, and stay.
    expect(await rowsWith('library/test')).toHaveLength(3);
  });

  it('keeps every delivery when the retention is 0', async () => {
    await insertDelivery('forever', 400 * DAY);
    const worker = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_RECONCILE_INTERVAL: '0', SIGNET_DELIVERY_RETENTION: '0' });
    try {
      await new Promise((r) => setTimeout(r, 1_500));
    } finally {
      await worker.stop();
    }
    expect(await markers('forever')).toEqual(['forever']);
  });
});
