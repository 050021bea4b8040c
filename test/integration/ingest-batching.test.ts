// Deliveries that arrive together are written together (services/ingest/group-commit.ts): their
// jobs in one Redis pipeline, their records in one INSERT. What a 202 means must not change: a
// delivery is answered 202 only once its own record is committed and its jobs are queued, whatever
// becomes of the batch it was in — a member that cannot be written, or Postgres lost mid-batch.
// Ingest role only, Postgres behind a TCP proxy the test can cut.
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const EVENTS_V2 = 'application/vnd.docker.distribution.events.v2+json';
const REGISTRY = 'registry.test';

let db: TestDb;
let proxy: TcpProxy;
let signet: TestSignet;

beforeAll(async () => {
  db = await createTestDb();
  const url = new URL(db.url);
  proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
  url.port = String(proxy.port);
  signet = await startTestSignet({ DATABASE_URL: url.toString(), SIGNET_ROLES: 'ingest', SIGNET_ALLOWED_REGISTRIES: REGISTRY });
});

afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await db?.drop();
});

/** A distribution notification of one manifest pushed by tag (a resolve-tag job), different for each `name`. */
function delivery(name: string): string {
  const digest = `sha256:${createHash('sha256').update(name).digest('hex')}`;
  return JSON.stringify({
    events: [
      {
        id: `event-${name}`,
        timestamp: '2026-01-02T15:04:05Z',
        action: 'push',
        target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 100, repository: 'team/app', tag: `t-${name}` },
        request: { id: `req-${name}`, host: REGISTRY, method: 'PUT' },
      },
    ],
  });
}

interface Answer {
  readonly body: string;
  readonly status: number;
  readonly queued: readonly string[];
}

/** Posts every body at once (each its own request, all in flight together). */
async function postAll(bodies: readonly string[]): Promise<Answer[]> {
  return Promise.all(
    bodies.map(async (body) => {
      const res = await signet.app.inject({
        method: 'POST',
        url: '/webhooks/distribution',
        headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': EVENTS_V2 },
        payload: body,
      });
      return { body, status: res.statusCode, queued: res.statusCode === 202 ? res.json<{ queued: string[] }>().queued : [] };
    }),
  );
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** The recorded rows of these bodies, by payload hash (read past the proxy). */
async function recorded(bodies: readonly string[]): Promise<Map<string, { received_at: Date; job_ids: string[] }>> {
  if (bodies.length === 0) {
    return new Map();
  }
  const rows = await db.db
    .selectFrom('webhook_deliveries')
    .select(['payload_sha256', 'received_at', 'job_ids'])
    .where('payload_sha256', 'in', bodies.map(sha256))
    .execute();
  return new Map(rows.map((r) => [r.payload_sha256, r]));
}

/** Every delivery answered 202 has its row, naming the jobs it was answered with, and those jobs are queued. */
async function expectAcknowledgedKept(answers: readonly Answer[]): Promise<void> {
  const acknowledged = answers.filter((a) => a.status === 202);
  const rows = await recorded(acknowledged.map((a) => a.body));
  for (const a of acknowledged) {
    const row = rows.get(sha256(a.body));
    expect(row, `the row of a delivery answered 202: ${a.body.slice(0, 80)}`).toBeDefined();
    expect(row!.job_ids).toEqual(a.queued);
    for (const id of a.queued) {
      expect(await signet.queue!.getJob(id), `job ${id}`).toBeDefined();
    }
  }
}

describe('deliveries written together', () => {
  it('records concurrent deliveries in shared statements, each answered 202 with its own row and jobs', async () => {
    const answers = await postAll(Array.from({ length: 60 }, (_, i) => delivery(`together-${i}`)));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    await expectAcknowledgedKept(answers);
    // Rows one INSERT wrote share its transaction's now(): some were written together.
    const rows = [...(await recorded(answers.map((a) => a.body))).values()];
    expect(rows).toHaveLength(60);
    expect(new Set(rows.map((r) => r.received_at.getTime())).size).toBeLessThan(60);
  });

  it('a member that cannot be written fails alone: its batch-mates are recorded and answered 202', async () => {
    await sql`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.payload LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned delivery'; END IF; RETURN NEW; END $$`.execute(db.db);
    await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION refuse_poison()`.execute(db.db);
    try {
      const bodies = Array.from({ length: 40 }, (_, i) => delivery(i === 20 ? 'poison' : `mate-${i}`));
      const answers = await postAll(bodies);
      expect(answers.filter((a) => a.status !== 202).map((a) => [a.status, a.body.includes('poison')])).toEqual([[503, true]]);
      await expectAcknowledgedKept(answers);
      expect((await recorded([delivery('poison')])).size).toBe(0);
    } finally {
      await sql`DROP TRIGGER refuse_poison ON webhook_deliveries`.execute(db.db);
      await sql`DROP FUNCTION refuse_poison()`.execute(db.db);
    }
  });

  it('Postgres lost in the middle of batches: every delivery answered 202 is recorded with its jobs queued', async () => {
    // Each row takes a few milliseconds to write, so the connection is cut while batches are in flight.
    await sql`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.005); RETURN NEW; END $$`.execute(db.db);
    await sql`CREATE TRIGGER slow_insert BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION slow_insert()`.execute(db.db);
    try {
      const bodies = Array.from({ length: 300 }, (_, i) => delivery(`cut-${i}`));
      const sent = postAll(bodies);
      await eventually(async () => ((await recorded(bodies)).size >= 30 ? true : undefined), '30 deliveries recorded', 30_000);
      proxy.cut();
      const answers = await sent;
      proxy.restore();
      const statuses = new Set(answers.map((a) => a.status));
      // Some were answered before the cut, some refused after it (the registry redelivers those).
      expect(statuses).toEqual(new Set([202, 503]));
      await expectAcknowledgedKept(answers);
    } finally {
      proxy.restore();
      await sql`DROP TRIGGER slow_insert ON webhook_deliveries`.execute(db.db);
      await sql`DROP FUNCTION slow_insert()`.execute(db.db);
    }
    // And the intake writes again once Postgres is back.
    const again = await eventually(async () => {
      const [a] = await postAll([delivery('after-the-cut')]);
      return a!.status === 202 ? a : undefined;
    }, 'a 202 once Postgres is reachable again');
    await expectAcknowledgedKept([again]);
  });
});
