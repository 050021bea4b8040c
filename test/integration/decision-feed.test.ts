// The durable decision feed: an API replica follows the ledger-events stream through a TCP proxy
// in front of the real Redis. Cut for a while, it resumes from the last event it applied — the
// decisions published meanwhile reach it from the stream alone (they are not in Postgres), and no
// full reload happens. Cut while more than the stream's window is published, it reloads from
// Postgres, and a decision whose event was trimmed is corrected by that reload. A decision made
// while it was away whose event never reached the stream is read from Postgres once it resumes.
// And a publisher whose connection drops mid-batch appends every event all the same.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import { ledgerStream, publishEvents, type LedgerEvent } from '../../services/common/events.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { appendToFeed, type FeedStream } from '../../services/common/stream-feed.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { feedCounters } from '../helpers/decisions.ts';
import { seedAllowedImages } from '../helpers/ledger.ts';
import { eventually, startTestSignet, TEST_REDIS_URL, type TestSignet } from '../helpers/signet.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const POLICY = `allow_with_verification:
  registry.example.com:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;
const VERSION = parsePolicy(POLICY).version;
const SIGNER = { subject: 'alice@example.com', issuer: 'https://accounts.example.com' };
/** The window the publisher keeps in this test (stream nodes hold 100 entries: trimming is by node). */
const WINDOW = 100;

let db: TestDb;
let proxy: TcpProxy;
let signet: TestSignet;
let publisher: Redis;
let stream: FeedStream;
let tmp: string;
const seeded = sha256Digest('seeded, later denied');

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-feed-'));
  await writeFile(join(tmp, 'policy.yaml'), POLICY);
  await seedAllowedImages(db.db, { registry: 'registry.example.com', repository: 'team/app', digests: [seeded], policyVersion: VERSION, signer: SIGNER });
  const redis = new URL(TEST_REDIS_URL);
  proxy = await startTcpProxy(redis.hostname, Number(redis.port || 6379));
  signet = await startTestSignet({ DATABASE_URL: db.url, REDIS_URL: `redis://127.0.0.1:${proxy.port}`, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml') });
  publisher = new Redis(TEST_REDIS_URL);
  stream = { ...ledgerStream(signet.config.redis), maxLen: WINDOW };
});

afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  publisher?.disconnect();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

const ask = async (digest: Digest) =>
  (await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`registry.example.com/team/app@${digest}`)}` })).json<{
    allowed: boolean;
    reason: string;
    stale: boolean;
  }>();

const feed = () => feedCounters(signet);

function decision(digest: Digest, allowed: boolean): LedgerEvent {
  return {
    type: 'decision',
    registry: 'registry.example.com',
    repository: 'team/app',
    digest,
    verifiedAt: new Date().toISOString(),
    allowed,
    reason: allowed ? 'verified' : 'unsigned',
    message: allowed ? 'signed by alice@example.com' : 'no signature',
    signers: allowed ? [SIGNER] : [],
    policyVersion: VERSION,
    rule: null,
    mode: 'enforce',
  };
}

/** Waits until the replica's feed connection is down (the cut is seen) or up again. */
const feedReady = (up: boolean) =>
  eventually(async () => {
    const res = await signet.app.inject({ method: 'GET', url: '/readyz' });
    const redis = res.json<{ checks: Record<string, string> }>().checks.redis ?? '';
    return (redis === 'ok') === up ? true : undefined;
  }, up ? 'the decision feed back up' : 'the decision feed down');

describe('the durable decision feed', () => {
  it('resumes after a short outage without a reload, and reloads only after falling behind the window', async () => {
    expect(await ask(seeded)).toMatchObject({ allowed: true, stale: false });
    expect(await feed()).toEqual({ reload: 0, resume: 0, applied: 0 });

    // A short outage: decisions published meanwhile exist only in the stream, not in Postgres.
    proxy.cut();
    await feedReady(false);
    const whileAway = Array.from({ length: 20 }, (_, i) => sha256Digest(`published while away ${i}`));
    await publishEvents(publisher, stream, whileAway.map((d) => decision(d, true)));
    expect(await ask(seeded)).toMatchObject({ allowed: true, stale: true });
    proxy.restore();
    await eventually(async () => ((await feed()).applied === whileAway.length ? true : undefined), 'the events published while away applied');
    // Then what was decided meanwhile is read from Postgres: stale until that is done.
    await eventually(async () => ((await ask(seeded)).stale ? undefined : true), 'caught up with Postgres');
    for (const d of whileAway) {
      expect(await ask(d)).toMatchObject({ allowed: true, reason: 'verified', stale: false });
    }
    expect(await feed()).toMatchObject({ reload: 0, resume: 1 });

    // A long outage: the seeded image is denied in Postgres, and its event is trimmed away by more
    // than a window of later events. Only a reload from Postgres can bring the denial.
    proxy.cut();
    await feedReady(false);
    await db.db.updateTable('decisions').set({ allowed: false, reason: 'unsigned', message: 'no signature', signers: '[]' }).execute();
    await publishEvents(publisher, stream, [decision(seeded, false)]);
    await publishEvents(publisher, stream, Array.from({ length: WINDOW * 5 }, (_, i) => decision(sha256Digest(`filler ${i}`), true)));
    expect(await ask(seeded)).toMatchObject({ allowed: true, stale: true });
    proxy.restore();
    await eventually(async () => ((await feed()).reload === 1 ? true : undefined), 'a full reload');
    await eventually(async () => ((await ask(seeded)).stale ? undefined : true), 'answers fresh again');
    expect(await ask(seeded)).toMatchObject({ allowed: false, reason: 'unsigned', stale: false });
    // The events still in the window after the reload point are not re-applied; those before it were trimmed.
    expect((await feed()).resume).toBe(1);
  });

  it('appends every message of a batch whose connection drops after Redis answered part of it', async () => {
    // The worker's kind of connection: commands wait for Redis while it is away.
    const conn = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const killer = new Redis(TEST_REDIS_URL);
    conn.on('error', () => {}); // the cut's ECONNRESET: expected
    try {
      const target: FeedStream = { key: `${stream.key}:append-${process.pid}`, maxLen: 1_000_000 };
      const id = String(await conn.client('ID'));
      const messages = Array.from({ length: 30_000 }, (_, i) => ({ i }));
      const appending = appendToFeed(conn, target, messages);
      // Once some entries are in (Redis answered them), the connection is cut mid-pipeline.
      const deadline = Date.now() + 10_000;
      while ((await killer.xlen(target.key)) === 0 && Date.now() < deadline) {
        // polled as fast as Redis answers: the batch takes Redis tens of milliseconds
      }
      expect(await killer.client('KILL', 'ID', id)).toBe(1);
      await appending;
      expect(await killer.xlen(target.key)).toBeLessThan(messages.length * 2);
      const seen = new Set<number>();
      for (const [, fields] of await killer.xrange(target.key, '-', '+')) {
        seen.add((JSON.parse(fields[1]!) as { i: number }).i);
      }
      // At least once each (a reply lost with the connection makes a duplicate, harmless to followers).
      expect(seen.size).toBe(messages.length);
      await killer.del(target.key);
    } finally {
      conn.disconnect();
      killer.disconnect();
    }
  });

  it('reads from Postgres, after resuming, what was decided while it was away: a decision whose event never reached the stream is not kept as it was', async () => {
    const image = sha256Digest('denied while the feed was away');
    await seedAllowedImages(db.db, { registry: 'registry.example.com', repository: 'team/app', digests: [image], policyVersion: VERSION, signer: SIGNER });
    // Held in memory: asked once (a miss, then kept).
    expect(await ask(image)).toMatchObject({ allowed: true, stale: false });
    const before = await feed();
    proxy.cut();
    await feedReady(false);
    // A worker denies it and commits, and its event is lost (nothing reaches the stream).
    const { id } = await db.db.selectFrom('manifests').select('id').where('digest', '=', image).executeTakeFirstOrThrow();
    await db.db.updateTable('decisions').set({ allowed: false, reason: 'unsigned', message: 'no signature', signers: '[]', decided_at: new Date() }).where('manifest_id', '=', id).execute();
    expect(await ask(image)).toMatchObject({ allowed: true, stale: true });
    proxy.restore();
    await eventually(async () => ((await ask(image)).allowed ? undefined : true), 'the denial read from Postgres once the feed resumed');
    expect(await ask(image)).toMatchObject({ allowed: false, reason: 'unsigned', stale: false });
    // Resumed, not reloaded.
    expect(await feed()).toMatchObject({ reload: before.reload, resume: before.resume + 1 });
  });
});
