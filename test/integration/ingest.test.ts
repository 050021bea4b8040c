// The webhook edge against real Postgres and Redis (ingest role only, so queued jobs stay put and
// can be counted). Redis outages use a redis-server of the test's own, started and killed here.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFixture } from '../helpers/fixtures.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';

const V3_ENVELOPE = readFixture('webhooks/distribution/v3-push-envelope.events.v2+json.json');
const V2_ENVELOPE = readFixture('webhooks/distribution/v2-push-envelope.events.v1+json.json');
const EVENTS_V2 = 'application/vnd.docker.distribution.events.v2+json';

let db: TestDb;
let signet: TestSignet;

beforeAll(async () => {
  db = await createTestDb();
  signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'ingest', SIGNET_ALLOWED_REGISTRIES: 'registrycluster.local' });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
});

afterEach(async () => {
  await signet.queue!.obliterate({ force: true });
});

function post(s: TestSignet, payload: string | Buffer, headers: Record<string, string> = {}) {
  return s.app.inject({
    method: 'POST',
    url: '/webhooks/distribution',
    headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': EVENTS_V2, ...headers },
    payload,
  });
}

async function deliveryCount(): Promise<number> {
  const r = await db.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

describe('POST /webhooks/distribution', () => {
  it('queues one job per manifest push, records the delivery verbatim and answers 202', async () => {
    const before = await deliveryCount();
    const res = await post(signet, V3_ENVELOPE);
    expect(res.statusCode).toBe(202);
    const body = res.json<{ queued: string[]; ignored: unknown[] }>();
    expect(body.queued).toHaveLength(1);
    expect(body.ignored).toHaveLength(2);
    const job = await signet.queue!.getJob(body.queued[0]!);
    expect(job?.data).toEqual({
      registry: 'registrycluster.local',
      repository: 'library/test',
      digest: 'sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf',
      trigger: { kind: 'push' },
      eventAt: '2006-01-02T15:04:05.000Z',
    });
    const rows = await db.db.selectFrom('webhook_deliveries').selectAll().orderBy('id', 'desc').limit(1).execute();
    expect(await deliveryCount()).toBe(before + 1);
    expect(rows[0]).toMatchObject({ source: 'distribution', status_code: 202, content_type: EVENTS_V2, event_count: 3, job_ids: body.queued });
    expect(rows[0]!.payload).toBe(V3_ENVELOPE.toString('utf8'));
  });

  it.each(['application/vnd.docker.distribution.events.v1+json', 'application/json', 'application/json; charset=utf-8'])(
    'accepts content type %s',
    async (contentType) => {
      expect((await post(signet, V3_ENVELOPE, { 'content-type': contentType })).statusCode).toBe(202);
    },
  );

  it('rejects events for a registry Signet is not configured to contact, queueing nothing (no SSRF)', async () => {
    const forged = V3_ENVELOPE.toString('utf8').replaceAll('registrycluster.local', '169.254.169.254');
    const res = await post(signet, forged);
    expect(res.statusCode).toBe(202);
    const body = res.json<{ queued: string[]; rejected: { reason: string }[] }>();
    expect(body.queued).toEqual([]);
    expect(body.rejected).toEqual([
      expect.objectContaining({ reason: 'registry 169.254.169.254 is not one Signet may contact (SIGNET_ALLOWED_REGISTRIES or the registries file)' }),
    ]);
    const counts = await signet.queue!.getJobCounts('waiting', 'active', 'delayed', 'completed');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('collapses a duplicate delivery onto the same job', async () => {
    const first = await post(signet, V3_ENVELOPE);
    const second = await post(signet, V3_ENVELOPE);
    expect(second.json()).toEqual(first.json());
    const counts = await signet.queue!.getJobCounts('waiting', 'active', 'delayed', 'completed');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('turns a cosign .sig push into a job for the signed image, distinct from its push job', async () => {
    const subject = 'a'.repeat(64);
    const envelope = JSON.parse(V3_ENVELOPE.toString()) as { events: Record<string, any>[] };
    envelope.events = [envelope.events[0]!];
    envelope.events[0]!.target.tag = `sha256-${subject}.sig`;
    envelope.events[0]!.target.mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const res = await post(signet, JSON.stringify(envelope));
    expect(res.statusCode).toBe(202);
    const [id] = res.json<{ queued: string[] }>().queued;
    expect(id).toMatch(/^sig-/);
    expect((await signet.queue!.getJob(id!))?.data).toMatchObject({
      digest: `sha256:${subject}`,
      trigger: { kind: 'signature', artifactDigest: envelope.events[0]!.target.digest, tag: `sha256-${subject}.sig` },
    });
    // A .sig tag is not image tag history.
    expect(await db.db.selectFrom('tags').selectAll().where('name', 'like', 'sha256-%').execute()).toEqual([]);
  });

  it('records no tag for a manifest pushed by tag: the tag is queued to be confirmed in the registry, the digest only a hint', async () => {
    const envelope = JSON.parse(V3_ENVELOPE.toString()) as { events: Record<string, any>[] };
    envelope.events[0]!.target.tag = 'v9';
    const res = await post(signet, JSON.stringify(envelope));
    expect(res.statusCode).toBe(202);
    const [tag] = res.json<{ queued: string[] }>().queued;
    expect(tag).toMatch(/^tag-/);
    expect((await signet.queue!.getJob(tag!))?.data).toMatchObject({ tag: 'v9', digest: envelope.events[0]!.target.digest, source: 'distribution' });
    const tags = await db.db.selectFrom('tags').select(['name', 'digest']).where('name', '=', 'v9').execute();
    expect(tags).toEqual([]);
  });

  it('accepts the 2.x envelope but queues nothing for its schema1 manifest', async () => {
    const res = await post(signet, V2_ENVELOPE, { 'content-type': 'application/vnd.docker.distribution.events.v1+json' });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ queued: [] });
    expect(res.json<{ ignored: { reason: string }[] }>().ignored[0]!.reason).toContain('schema1');
  });

  describe('refuses, and records nothing, when', () => {
    it.each([
      ['no Authorization header', { authorization: '' }, 401],
      ['a wrong token', { authorization: 'Bearer wrong-token-wrong-token' }, 401],
      ['a Basic credential', { authorization: `Basic ${Buffer.from(`x:${TEST_WEBHOOK_TOKEN}`).toString('base64')}` }, 401],
      ['a text/plain body', { 'content-type': 'text/plain' }, 415],
      ['no content type', { 'content-type': '' }, 415],
    ])('%s', async (_name, headers, status) => {
      const before = await deliveryCount();
      const res = await post(signet, V3_ENVELOPE, headers);
      expect(res.statusCode).toBe(status);
      expect(res.json<{ message: string }>().message.length).toBeGreaterThan(0);
      expect(await deliveryCount()).toBe(before);
      expect(await signet.queue!.count()).toBe(0);
    });

    it('the body is over SIGNET_MAX_WEBHOOK_BYTES (413)', async () => {
      const before = await deliveryCount();
      const res = await post(signet, Buffer.alloc(signet.config.http.maxWebhookBytes + 1, 0x20));
      expect(res.statusCode).toBe(413);
      expect(await deliveryCount()).toBe(before);
    });

    it.each([
      ['not JSON', '{"events": [', 'body is not JSON'],
      ['not an envelope', '{"hello": "world"}', 'events: '],
      ['an event without a target', '{"events": [{"id": "1", "timestamp": "2024-01-01T00:00:00Z", "action": "push"}]}', 'events.0.target'],
    ])('the body is %s (400, naming the problem)', async (_name, payload, message) => {
      const before = await deliveryCount();
      const res = await post(signet, payload);
      expect(res.statusCode).toBe(400);
      expect(res.json<{ message: string }>().message).toContain(message);
      expect(await deliveryCount()).toBe(before);
      expect(await signet.queue!.count()).toBe(0);
    });
  });
});

describe('when Redis is unreachable', () => {
  let redis: ChildProcess | undefined;
  let port: number;
  let own: TestSignet | undefined;
  let ownDb: TestDb | undefined;

  function startRedis(): Promise<ChildProcess> {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    return new Promise((resolve, reject) => {
      proc.once('error', reject);
      proc.once('spawn', () => resolve(proc));
    });
  }

  afterAll(async () => {
    redis?.kill('SIGKILL');
    await own?.stop();
    await ownDb?.drop();
  });

  it('answers 503 at once, records nothing, and accepts again when Redis is back', async () => {
    port = await freePort();
    redis = await startRedis();
    ownDb = await createTestDb();
    own = await eventually(
      () => startTestSignet({ DATABASE_URL: ownDb!.url, SIGNET_ROLES: 'ingest', REDIS_URL: `redis://127.0.0.1:${port}`, SIGNET_ALLOWED_REGISTRIES: 'registrycluster.local' }),
      'signet connected to the test redis',
    );
    expect((await post(own, V3_ENVELOPE)).statusCode).toBe(202);

    redis.kill('SIGKILL');
    await new Promise((r) => redis!.once('exit', r));
    const res = await post(own, V3_ENVELOPE);
    expect(res.statusCode).toBe(503);
    const rows = await ownDb.db.selectFrom('webhook_deliveries').select('status_code').execute();
    expect(rows).toEqual([{ status_code: 202 }]);
    const ready = await own.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);

    redis = await startRedis();
    const again = await eventually(async () => {
      const r = await post(own!, V3_ENVELOPE);
      return r.statusCode === 202 ? r : undefined;
    }, 'a 202 after Redis restarted');
    expect(again.statusCode).toBe(202);
  });
});
