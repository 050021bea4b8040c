// An API replica's decision table across a policy change: it answers under the policy in force,
// from its decisions, until the worker has decided the whole ledger under the new one; then it
// switches at once — told by the feed's announcement, or, when that never reaches it, by polling
// Postgres. No answer during the switch mixes the two: each carries the decision of the version
// it names.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DecisionTable } from '../../services/api/decision-table.ts';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy, type Policy } from '../../services/common/policy/policy.ts';
import type { FeedStream } from '../../services/common/stream-feed.ts';
import { createDecider, type Decider } from '../../services/core/decider.ts';
import { seedLedger } from '../../scripts/lib/seed-ledger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { eventually, TEST_REDIS_URL } from '../helpers/signet.ts';

const developers = (pattern: string) => ({ 'certificate-identity-regexp': pattern, 'certificate-oidc-issuer': 'https://accounts.google.com' });
const policyText = (identity: string) => stringify({ allow_with_verification: { 'docker.io': { '**': developers(identity) } } });
/** Every docker.io image signed by a developer is allowed under P1, none under P2, all again under P3. */
const P1 = policyText('^dev[0-9]+@example\\.com$');
const P2 = policyText('^nobody@example\\.com$');
const P3 = policyText('@example\\.com$');

let db: TestDb;
let redis: Redis;
const connections: Redis[] = [];
let stream: FeedStream;
let decider: Decider;
let images: string[];
const log = createLogger({ logLevel: 'silent' });

beforeAll(async () => {
  db = await createTestDb();
  await seedLedger(db.db, { signatures: 600, repositories: 60, identities: 30 });
  redis = new Redis(TEST_REDIS_URL);
  stream = ledgerStream({ queuePrefix: `signet-switch-test-${randomBytes(4).toString('hex')}`, feedMaxLen: 10_000 });
  decider = createDecider({ db: db.db, redis, stream, policy: parsePolicy(P1), policySource: P1, log });
  await decider.redecide();
  // The docker.io images allowed under P1.
  const rows = await sql<{ ref: string }>`
    SELECT g.host || '/' || r.name || '@' || m.digest AS ref FROM decisions d JOIN manifests m ON m.id = d.manifest_id
    JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
    WHERE d.policy_version = ${parsePolicy(P1).version} AND g.host = 'docker.io' AND d.allowed ORDER BY m.id`.execute(db.db);
  images = rows.rows.map((r) => r.ref);
});

afterAll(async () => {
  await redis?.del(stream.key);
  redis?.disconnect();
  connections.forEach((c) => c.disconnect());
  await db?.drop();
});

async function startTable(policy: Policy, feed: FeedStream, pollMs: number): Promise<DecisionTable> {
  const table = new DecisionTable(db.db, policy, log, null, { pollMs });
  const connection = new Redis(TEST_REDIS_URL);
  connections.push(connection);
  await table.start(connection, feed);
  return table;
}

async function switchTo(text: string): Promise<void> {
  decider.setPolicy(parsePolicy(text), text);
  expect(await decider.redecide()).toMatchObject({ kind: 'incremental', complete: true });
}

describe('a policy change on an API replica', () => {
  it('answers under the policy in force until the ledger is decided under the new one, then switches at once (the feed tells it)', async () => {
    expect(images.length).toBeGreaterThan(10);
    const v1 = parsePolicy(P1).version;
    const v2 = parsePolicy(P2).version;
    // Polling too slow to matter: the feed's announcement switches it.
    const table = await startTable(parsePolicy(P1), stream, 600_000);
    try {
      expect(await table.lookup(images[0]!)).toMatchObject({ allowed: true, policyVersion: v1 });
      await table.setPolicy(parsePolicy(P2));
      expect(table.pendingPolicy?.version).toBe(v2);
      expect(table.policyVersion).toBe(v1);
      expect(await table.lookup(images[0]!)).toMatchObject({ allowed: true, policyVersion: v1 });

      // Lookups all along the worker's pass and the switch: each answer is its version's.
      const answers: { policyVersion: string; allowed: boolean }[] = [];
      let done = false;
      const asking = (async () => {
        while (!done) {
          for (const image of images) {
            answers.push(await table.lookup(image));
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      await switchTo(P2);
      await eventually(() => Promise.resolve(table.policyVersion === v2 ? true : undefined), 'the switch to P2');
      done = true;
      await asking;
      expect(table.pendingPolicy).toBeNull();
      expect(answers.filter((a) => a.policyVersion === v1).every((a) => a.allowed)).toBe(true);
      expect(answers.filter((a) => a.policyVersion === v2).every((a) => !a.allowed)).toBe(true);
      expect(answers.some((a) => a.policyVersion === v1)).toBe(true);
      // Once switched, every answer is the new version's, from memory (no miss reads).
      const misses = table.missReads().primary;
      for (const image of images) {
        expect(await table.lookup(image)).toMatchObject({ allowed: false, reason: 'identity_mismatch', policyVersion: v2 });
      }
      expect(table.missReads().primary).toBe(misses);
    } finally {
      await table.stop();
    }
  });

  it('switches by polling Postgres when the announcement never reaches it', async () => {
    const v2 = parsePolicy(P2).version;
    const v3 = parsePolicy(P3).version;
    // A stream nobody publishes to.
    const table = await startTable(parsePolicy(P2), { ...stream, key: `${stream.key}-silent` }, 100);
    try {
      await table.setPolicy(parsePolicy(P3));
      expect(await table.lookup(images[0]!)).toMatchObject({ allowed: false, policyVersion: v2 });
      await switchTo(P3);
      await eventually(() => Promise.resolve(table.policyVersion === v3 ? true : undefined), 'the switch to P3');
      expect(await table.lookup(images[0]!)).toMatchObject({ allowed: true, policyVersion: v3 });
    } finally {
      await table.stop();
      await redis.del(`${stream.key}-silent`);
    }
  });
});
