// Anonymous senders must not be able to make an ingest process hold their bodies. The HMAC source
// (github) can only check a delivery once its whole body is read, so a flood of large unsigned
// bodies at it is the worst a stranger can do to an ingest process's memory: 200 at once, 8 MiB
// each (the token sources refuse before reading anything: their secret is in the headers).
import { createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_SOURCES } from '../../services/common/domain/registry-event.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { readFixture } from '../helpers/fixtures.ts';
import { TEST_WEBHOOK_TOKEN } from '../helpers/signet.ts';
import { type IngestProcess, procMemory, startIngestProcess } from './ingest-process.ts';

const SECRET = 'security-github-secret-0123456789';
const SENDERS = 200;
const BODY = Buffer.alloc(8 * 1024 * 1024, 0x20);
const MiB = 1024 * 1024;
/**
 * What the flood may add to an idle ingest process's resident memory at the peak: the bodies of
 * the signing source read at once (16 × 1 MiB, twice that while assembled) and 200 connections.
 * Without the limits on signed bodies it added 700 MiB to 1.3 GiB (three runs).
 */
const GROWTH_BOUND = 128 * MiB;
/** The peak itself, with room under the 512 Mi limit of the shipped manifest (deploy/kubernetes/signet.yaml). */
const PEAK_RSS_BOUND = 448 * MiB;

let db: TestDb;
let signet: IngestProcess;

beforeAll(async () => {
  db = await createTestDb();
  signet = await startIngestProcess(db.url, { SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN, SIGNET_WEBHOOK_SECRET_GITHUB: SECRET, SIGNET_ALLOWED_REGISTRIES: 'ghcr.io' });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
});

/** One anonymous delivery with a well-formed but wrong signature: its status, or the socket error it ended with. */
function unsignedDelivery(port: number, chunked: boolean): Promise<{ status: number | null; retryAfter: string | null; error: string | null }> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/webhooks/github',
      agent: false,
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'package',
        'x-hub-signature-256': `sha256=${randomBytes(32).toString('hex')}`,
        ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(BODY.length) }),
      },
    });
    req.setTimeout(90_000, () => req.destroy(new Error('client timeout')));
    req.once('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? null, retryAfter: res.headers['retry-after'] ?? null, error: null });
    });
    req.once('error', (err: NodeJS.ErrnoException) => resolve({ status: null, retryAfter: null, error: err.code ?? err.message }));
    if (chunked) {
      for (let i = 0; i < BODY.length; i += MiB) {
        req.write(BODY.subarray(i, i + MiB));
      }
      req.end();
    } else {
      req.end(BODY);
    }
  });
}

describe('pre-authentication memory', () => {
  it(`${SENDERS} concurrent anonymous 8 MiB bodies at the HMAC source add under ${GROWTH_BOUND / MiB} MiB to the process (peak under ${PEAK_RSS_BOUND / MiB} MiB), and a signed delivery is accepted after`, { timeout: 180_000 }, async () => {
    const idle = procMemory(signet.pid, 'VmRSS');
    let sampled = idle;
    const sampler = setInterval(() => {
      sampled = Math.max(sampled, procMemory(signet.pid, 'VmRSS'));
    }, 20);
    const results = await Promise.all(Array.from({ length: SENDERS }, (_, i) => unsignedDelivery(signet.port, i % 2 === 1)));
    clearInterval(sampler);
    const peak = Math.max(sampled, procMemory(signet.pid, 'VmHWM'));
    const tally = new Map<string, number>();
    for (const r of results) {
      const key = r.status === null ? `error ${r.error}` : String(r.status);
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    console.log(`idle RSS ${(idle / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB; answers ${JSON.stringify(Object.fromEntries(tally))}`);

    // None got in; every answer is a refusal (or the socket was closed on the rest of the body).
    expect(results.filter((r) => r.status !== null && ![401, 413, 503].includes(r.status))).toEqual([]);
    // Those refused for being too many at once are told when to come back.
    expect(results.filter((r) => r.status === 503 && r.retryAfter === null)).toEqual([]);
    expect(peak - idle).toBeLessThan(GROWTH_BOUND);
    expect(peak).toBeLessThan(PEAK_RSS_BOUND);

    // The process still takes a real, signed delivery.
    const body = readFixture('webhooks/github/package.published.docker.payload.json');
    const res = await fetch(`${signet.url}/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'package',
        'x-github-delivery': '8f0c2a4e-0000-4000-8000-000000000001',
        'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
      },
      body: new Uint8Array(body),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { queued: string[] }).queued).toHaveLength(1);
  });

  it.each(WEBHOOK_SOURCES.filter((s) => s !== 'github'))('%s refuses a wrong secret from the headers, without waiting for the 8 MiB body', async (source) => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(signet.port, '127.0.0.1');
      let got = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer within 5 s: ${JSON.stringify(got)}`));
      }, 5_000);
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        got += chunk;
        if (got.includes('\r\n\r\n')) {
          clearTimeout(timer);
          socket.destroy();
          resolve(got);
        }
      });
      socket.on('error', reject);
      // The headers only: not one byte of the announced body is ever sent.
      socket.write(
        `POST /webhooks/${source}?token=wrong-token-wrong-token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Authorization: Bearer wrong-token-wrong-token\r\nContent-Length: ${BODY.length}\r\n\r\n`,
      );
    });
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 401 Unauthorized');
  });
});
