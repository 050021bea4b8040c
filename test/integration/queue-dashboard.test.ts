// Bull Board on the API, behind the API tokens: a browser logs in with Basic (the token as
// password), a script with Bearer; the failed job of a real queue is listed with its error and
// retried from the dashboard's own API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { eventually, startTestSignet, type TestSignet } from '../helpers/signet.ts';

const TOKEN = 'queue-dashboard-token-0123456789';
let db: TestDb;
let signet: TestSignet;

beforeAll(async () => {
  db = await createTestDb();
  signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_API_TOKENS: TOKEN });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function get(path: string, authorization?: string): Promise<Response> {
  return fetch(`${signet.url}${path}`, { headers: authorization === undefined ? {} : { authorization } });
}

describe('/admin/queues', () => {
  it('asks a browser to log in, and refuses wrong tokens', async () => {
    const anonymous = await get('/admin/queues');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="signet"/);
    expect((await get('/admin/queues', basic('admin', 'wrong-token-0123456789'))).status).toBe(401);
    expect((await get('/admin/queues/api/queues', 'Bearer wrong-token-0123456789')).status).toBe(401);
  });

  it('serves the dashboard with Basic (token as password) and its API with Bearer', async () => {
    const page = await get('/admin/queues', basic('anyone', TOKEN));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Signet queues');
    const api = await get('/admin/queues/api/queues', `Bearer ${TOKEN}`);
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['alerts', 'expiry', 'index', 'maintenance', 'reconcile']);
  });

  it('lists a failed job with its error, and retries it', async () => {
    // A job whose payload no schema accepts fails for good in the real worker.
    await signet.queue!.add('index-manifest', { registry: 'nowhere' }, { jobId: 'broken-1', attempts: 1 });
    const failed = await eventually(async () => {
      const res = await get('/admin/queues/api/queues?activeQueue=index&status=failed', `Bearer ${TOKEN}`);
      const body = (await res.json()) as { queues: { name: string; jobs: { id: string; failedReason: string }[] }[] };
      const job = body.queues.find((q) => q.name === 'index')?.jobs.find((j) => j.id === 'broken-1');
      return job;
    }, 'the failed job is listed');
    expect(failed.failedReason).toMatch(/payload/i);
    const retry = await fetch(`${signet.url}/admin/queues/api/queues/index/broken-1/retry`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(retry.status).toBe(204);
    await eventually(async () => ((await signet.queue!.getJob('broken-1'))?.attemptsMade ?? 0) >= 2 || undefined, 'the job ran again');
  });
});
