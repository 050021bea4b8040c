// The policy versions' retention (SIGNET_POLICY_VERSION_RETENTION, redecision.retiredVersions and pruneRange):
// every policy change leaves a decision per image under the version it replaced. A version's
// decisions go once another version was decided in full after it was last in use, longer ago than
// the retention; never the version decided in full last (what API replicas answer under), never a
// version a pass works under (a rollback to an older one included), and a pruned version is no
// longer complete.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as redecision from '../../services/common/db/queries/redecision.ts';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createDecider, DECIDED_BY } from '../../services/core/decider.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { seedTeamApp } from '../helpers/ledger.ts';
import { eventually, startTestSignet, TEST_REDIS_URL } from '../helpers/signet.ts';

const policy = (variant: string) => `allow_with_verification:
  registry.example.com:
    team/*:
      certificate-identity-regexp: '^(?:alice@example\\.com|never-${variant})$'
      certificate-oidc-issuer: https://accounts.example.com
`;
const IMAGES = 7;
const DAY = 86_400_000;
const digests = Array.from({ length: IMAGES }, (_, i) => sha256Digest(`prune image ${i}`));
/** The versions, by name: their text and when (days ago, fractions allowed) each was claimed, last active and completed. */
const VERSIONS = {
  a: { text: policy('a'), claimed: 30, complete: 29 },
  b: { text: policy('b'), claimed: 20, complete: 19 },
  // A pass a newer policy stopped: never complete, superseded when c completed.
  stopped: { text: policy('stopped'), claimed: 10, active: 10 },
  c: { text: policy('c'), claimed: 3, complete: 2 },
  // A rollback to a version first claimed long ago, whose pass is under way now.
  rollback: { text: policy('rollback'), claimed: 40, active: 0.001 },
} as const;
type Name = keyof typeof VERSIONS;
const version = (name: Name) => parsePolicy(VERSIONS[name].text).version;

let db: TestDb;

beforeAll(async () => {
  db = await createTestDb();
  // The images and their decisions under version c; then the same decisions under every other version.
  await seedTeamApp(db.db, VERSIONS.c.text, digests);
  for (const [name, v] of Object.entries(VERSIONS) as [Name, (typeof VERSIONS)[Name]][]) {
    const ago = (days: number | undefined) => (days === undefined ? null : new Date(Date.now() - days * DAY));
    await db.db
      .insertInto('policies')
      .values({ version: version(name), source: v.text, decided_by: DECIDED_BY, loaded_at: ago(v.claimed)!, decided_from: ago(v.claimed) })
      .onConflict((oc) => oc.column('version').doNothing())
      .execute();
    await db.db
      .updateTable('policies')
      .set({ loaded_at: ago(v.claimed)!, decided_from: ago(v.claimed), complete_at: ago('complete' in v ? v.complete : undefined), active_at: ago('active' in v ? v.active : undefined) })
      .where('version', '=', version(name))
      .execute();
    if (name !== 'c') {
      await copyDecisions(version('c'), version(name));
    }
  }
});

afterAll(async () => {
  await db?.drop();
});

/** Every decision of version `from` again under version `to`. */
async function copyDecisions(from: string, to: string): Promise<void> {
  await sql`INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, verified_at, decided_at)
            SELECT manifest_id, ${to}, allowed, reason, message, signers, verified_at, decided_at FROM decisions WHERE policy_version = ${from}`.execute(db.db);
}

/** Prunes as the scheduled pass does (ranges of 3 image ids here); returns the rows deleted. */
async function prune(retentionMs: number): Promise<number> {
  return (await redecision.pruneRetired(db.db, retentionMs, 3n)).deleted;
}

/** A policy version `variant`, decided in full `days` ago with the same decisions as `like`'s; its version. */
async function decidedLongAgo(variant: string, days: number, like: Name): Promise<string> {
  const text = policy(variant);
  const v = parsePolicy(text).version;
  const claimed = new Date(Date.now() - (days + 1) * DAY);
  await db.db
    .insertInto('policies')
    .values({ version: v, source: text, decided_by: DECIDED_BY, loaded_at: claimed, decided_from: claimed, complete_at: new Date(Date.now() - days * DAY) })
    .execute();
  await copyDecisions(version(like), v);
  return v;
}

async function remaining(): Promise<Record<Name, number>> {
  const rows = await sql<{ v: string; n: string }>`SELECT policy_version AS v, count(*) AS n FROM decisions GROUP BY 1`.execute(db.db);
  const byVersion = new Map(rows.rows.map((r) => [r.v, Number(r.n)]));
  return Object.fromEntries((Object.keys(VERSIONS) as Name[]).map((name) => [name, byVersion.get(version(name)) ?? 0])) as Record<Name, number>;
}

describe('the policy versions’ retention', () => {
  it('prunes a version retired longer ago than the retention, and only those', async () => {
    // a was retired when b completed, 19 days ago; b and the stopped pass when c completed, 2 days ago.
    expect(await prune(7 * DAY)).toBe(IMAGES);
    expect(await remaining()).toEqual({ a: 0, b: IMAGES, stopped: IMAGES, c: IMAGES, rollback: IMAGES });
    const a = await db.db.selectFrom('policies').select(['complete_at', 'source']).where('version', '=', version('a')).executeTakeFirstOrThrow();
    expect(a.complete_at).toBeNull();
    expect(a.source).toBe(VERSIONS.a.text);

    expect(await prune(DAY)).toBe(2 * IMAGES);
    // c was decided in full last; the rollback's pass works under its version now.
    expect(await remaining()).toEqual({ a: 0, b: 0, stopped: 0, c: IMAGES, rollback: IMAGES });
    expect(await prune(0.001)).toBe(0);
  });

  it('stops pruning a version that comes back into use (a rollback’s pass) between two ranges', async () => {
    const backVersion = await decidedLongAgo('back', 59, 'c');
    const ids = (await db.db.selectFrom('decisions').select('manifest_id').where('policy_version', '=', backVersion).orderBy('manifest_id').execute()).map((r) => BigInt(r.manifest_id));
    const first = ids[0]! - 1n;
    expect(await redecision.retiredVersions(db.db, DAY)).toContain(backVersion);
    expect(await redecision.pruneRange(db.db, backVersion, DAY, String(first), String(first + 2n))).toBe(2);
    await redecision.markActive(db.db, backVersion);
    expect(await redecision.pruneRange(db.db, backVersion, DAY, String(first + 2n), String(first + 4n))).toBeNull();
    expect(await redecision.retiredVersions(db.db, DAY)).not.toContain(backVersion);
    const left = await db.db.selectFrom('decisions').select('manifest_id').where('policy_version', '=', backVersion).execute();
    expect(left).toHaveLength(IMAGES - 2);
    await db.db.deleteFrom('decisions').where('policy_version', '=', backVersion).execute();
    await db.db.deleteFrom('policies').where('version', '=', backVersion).execute();
  });

  it('a worker’s pass marks its version in use, so that a rollback is not pruned under it', async () => {
    // b again (pruned above): its pass carries over from c, the last complete version.
    const redis = new Redis(TEST_REDIS_URL);
    const stream = ledgerStream({ queuePrefix: `signet-prune-test-${randomBytes(4).toString('hex')}`, feedMaxLen: 100 });
    try {
      const before = new Date(Date.now() - 1000);
      const decider = createDecider({ db: db.db, redis, stream, policy: parsePolicy(VERSIONS.b.text), policySource: VERSIONS.b.text, log: createLogger({ logLevel: 'silent' }) });
      expect(await decider.redecide()).toMatchObject({ policyVersion: version('b'), complete: true });
      const b = await db.db.selectFrom('policies').select(['active_at', 'complete_at']).where('version', '=', version('b')).executeTakeFirstOrThrow();
      expect(b.active_at!.getTime()).toBeGreaterThanOrEqual(before.getTime());
      expect(b.complete_at).not.toBeNull();
      // b is now decided in full last: c is retired from now on, b is kept.
      expect(await prune(DAY)).toBe(0);
      expect(await remaining()).toMatchObject({ b: IMAGES, c: IMAGES });
    } finally {
      await redis.del(stream.key);
      redis.disconnect();
    }
  });

  it('runs as the worker’s hourly maintenance pass (the first at start), after SIGNET_POLICY_VERSION_RETENTION', async () => {
    // A version decided in full 50 days ago, retired when c completed (2 days ago).
    const oldVersion = await decidedLongAgo('old', 50, 'b');
    const tmp = await mkdtemp(join(tmpdir(), 'signet-prune-'));
    await writeFile(join(tmp, 'policy.yaml'), VERSIONS.b.text);
    const worker = await startTestSignet({
      DATABASE_URL: db.url,
      SIGNET_ROLES: 'worker',
      SIGNET_POLICY: join(tmp, 'policy.yaml'),
      SIGNET_RECONCILE_INTERVAL: '0',
      SIGNET_DELIVERY_RETENTION: '0',
      SIGNET_ADMISSION_RETENTION: '0',
      SIGNET_POLICY_VERSION_RETENTION: '1d',
    });
    const left = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM decisions WHERE policy_version = ${oldVersion}`.execute(db.db)).rows[0]!.n);
    try {
      await eventually(async () => ((await left()) === 0 ? true : undefined), 'the retired version pruned');
    } finally {
      await worker.stop();
      await rm(tmp, { recursive: true, force: true });
    }
    // c, retired only now (when b completed), and b, in force, are kept.
    expect(await remaining()).toMatchObject({ b: IMAGES, c: IMAGES });
  });
});
