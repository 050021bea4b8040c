// A policy edit's pass switches API replicas before it carries the untouched decisions over
// (core/decider.ts): once the touched images are decided, the version is complete with the last
// version as its base (policies.base_version), and every reader of decisions answers from the
// version's rows or else the base's. Proved on a synthetic ledger of ~1,650 images
// (scripts/lib/seed-ledger.ts): between the switch and the carry, every reader (a miss, a replica's
// load, full and bounded, GraphQL's image decisions, denials, image filters and the registry
// tallies) answers exactly what it answers once everything is carried over, and what a full
// re-decision gives; the base is not pruned while it is read through; a restart carries over.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { LedgerFeed } from '../../services/api/decisions/feed.ts';
import { DecisionStore } from '../../services/api/decisions/store.ts';
import * as decisions from '../../services/common/db/queries/decisions.ts';
import * as images from '../../services/common/db/queries/images.ts';
import * as redecision from '../../services/common/db/queries/redecision.ts';
import * as registries from '../../services/common/db/queries/registries.ts';
import type { Digest } from '../../services/common/domain/digest.ts';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import type { FeedStream } from '../../services/common/stream-feed.ts';
import { createDecider, type Decider } from '../../services/core/decider.ts';
import { SEED_REGISTRIES, seedLedger } from '../../scripts/lib/seed-ledger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { TEST_REDIS_URL } from '../helpers/signet.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const GOOGLE = 'https://accounts.google.com';
const workflows = { 'certificate-identity-regexp': '^https://github\\.com/org[0-9]+/', 'certificate-oidc-issuer': GITHUB };
const developers = { 'certificate-identity-regexp': '^dev[0-9]+@example\\.com$', 'certificate-oidc-issuer': GOOGLE };

/** Workflows everywhere; the edit lets developers, not workflows, sign organisations 10–19 of each registry (their decisions flip). */
const before = { allow_with_verification: Object.fromEntries(SEED_REGISTRIES.map((host) => [host, { '**': workflows }])) };
const after = { allow_with_verification: Object.fromEntries(SEED_REGISTRIES.map((host) => [host, { '**': workflows, 'org1[0-9]/**': developers }])) };

let db: TestDb;
let redis: Redis;
let stream: FeedStream;
let ids: string[];
const log = createLogger({ logLevel: 'silent' });

beforeAll(async () => {
  db = await createTestDb();
  await seedLedger(db.db, { signatures: 3000, repositories: 300, identities: 90 });
  ids = (await sql<{ id: string }>`SELECT id::text AS id FROM manifests ORDER BY id`.execute(db.db)).rows.map((r) => r.id);
  redis = new Redis(TEST_REDIS_URL);
  stream = ledgerStream({ queuePrefix: `signet-read-through-test-${randomBytes(4).toString('hex')}`, feedMaxLen: 1000 });
});

afterAll(async () => {
  await redis?.del(stream.key);
  redis?.disconnect();
  await db?.drop();
});

function decider(doc: object): Decider {
  const text = stringify(doc);
  return createDecider({ db: db.db, redis, stream, policy: parsePolicy(text), policySource: text, log });
}

/** The decision fields readers answer with (not when it was decided). */
function answer(d: { allowed: boolean; reason: string; message: string; rule: string | null; mode: string; policyVersion: string; verifiedAt: Date }) {
  return { allowed: d.allowed, reason: d.reason, message: d.message, rule: d.rule, mode: d.mode, policyVersion: d.policyVersion, verifiedAt: d.verifiedAt.getTime() };
}

/** What every reader of decisions answers under `version`, in a comparable form. */
async function readers(version: string) {
  const loaded = (await decisions.listRange(db.db, version, '0', String(ids.length + 1))).map((d) => [`${d.registry}/${d.repository}@${d.digest}`, answer(d)] as const);
  const found: unknown[] = [];
  for (const [key, d] of loaded.filter((_, i) => i % 7 === 0)) {
    const [where, digest] = key.split('@') as [string, Digest];
    const slash = where.indexOf('/');
    const got = await decisions.find(db.db, version, where.slice(0, slash), where.slice(slash + 1), digest);
    found.push(got === null ? null : answer(got));
    expect(found.at(-1), key).toEqual(d);
  }
  const byId = (await decisions.byImageIds(db.db, ids, version)).map((d) => [d.manifestId, answer(d)] as const).sort(([a], [b]) => Number(a) - Number(b));
  const filter = { registry: null, repository: null, reasons: null };
  const denied: string[] = [];
  for (let after: string | null = null; ; ) {
    const page = await decisions.pageDenials(db.db, version, filter, 100, after);
    denied.push(...page.rows.map((r) => r.id));
    if (!page.hasNextPage) {
      break;
    }
    after = page.rows.at(-1)!.id;
  }
  const tallies = [];
  for (const host of SEED_REGISTRIES) {
    const registry = (await sql<{ id: string }>`SELECT id::text AS id FROM registries WHERE host = ${host}`.execute(db.db)).rows[0]!.id;
    tallies.push({
      host,
      summary: await registries.summary(db.db, registry, version),
      outcomes: await registries.outcomes(db.db, registry, version, 3650),
      allowedImages: await images.countImages(db.db, { kind: 'registry', host }, { policyVersion: version, allowed: true }),
      deniedImages: await images.countImages(db.db, { kind: 'registry', host }, { policyVersion: version, allowed: false }),
    });
  }
  return {
    loaded,
    byId,
    denied: { ids: denied.sort(), count: await decisions.countDenials(db.db, version, filter), pages: new Set(denied).size },
    tallies,
  };
}

/** A bounded replica's load under `version`: what it holds, each entry as its decision. */
async function boundedLoad(version: string, maxEntries: number) {
  const store = new DecisionStore(maxEntries);
  await new LedgerFeed(db.db, store, () => version, log).load(store, version);
  return store;
}

describe('a policy edit switches before it carries over', () => {
  it('answers every reader from the version or else its base until the carry, exactly as after it; a restart carries over', async () => {
    const first = await decider(before).redecide();
    expect(first).toMatchObject({ kind: 'full', complete: true });
    const old = first.policyVersion;
    const d = decider(after);
    const version = d.policy.version;

    const switched = await d.redecide({ carry: false });
    expect(switched).toMatchObject({ kind: 'incremental', base: old, carried: 0, complete: true });
    expect(switched.switchMs).not.toBeNull();
    // The work is the edit's: organisations 10–19 are ~1/30 of the seed's repositories.
    expect(switched.decided).toBeGreaterThan(0);
    expect(switched.decided).toBeLessThan(ids.length / 10);
    expect(await redecision.isComplete(db.db, version)).toBe(true);
    expect(await redecision.baseOf(db.db, version)).toBe(old);
    const rowsOf = async (v: string) => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM decisions WHERE policy_version = ${v}`.execute(db.db)).rows[0]!.n);
    expect(await rowsOf(version)).toBe(switched.decided);

    const window = await readers(version);
    expect(window.loaded).toHaveLength(ids.length);
    expect(window.byId).toHaveLength(ids.length);
    expect(window.loaded.every(([, a]) => a.policyVersion === version)).toBe(true);
    expect(window.denied.count).toBe(window.denied.ids.length);
    expect(window.denied.pages).toBe(window.denied.ids.length);
    // The edit changed answers: some image allowed before is denied now, and the other way round.
    const previous = new Map((await decisions.listRange(db.db, old, '0', String(ids.length + 1))).map((x) => [`${x.registry}/${x.repository}@${x.digest}`, x.allowed]));
    expect(window.loaded.some(([k, a]) => previous.get(k) === true && !a.allowed)).toBe(true);
    expect(window.loaded.some(([k, a]) => previous.get(k) === false && a.allowed)).toBe(true);

    // A bounded replica loads the most recent: the version's own rows and the base's others, never
    // a base row its version replaced.
    const finalAnswers = new Map(window.loaded);
    const store = await boundedLoad(version, Math.floor(ids.length / 2));
    expect(store.size).toBeGreaterThan(switched.decided);
    let held = 0;
    for (const [key, a] of finalAnswers) {
      const [where, digest] = key.split('@') as [string, Digest];
      const slash = where.indexOf('/');
      const entry = store.peek(where.slice(0, slash), where.slice(slash + 1), digest);
      if (entry !== undefined) {
        held++;
        expect({ allowed: entry.decision.allowed, reason: entry.decision.reason, policyVersion: entry.decision.policyVersion }, key).toEqual({
          allowed: a.allowed,
          reason: a.reason,
          policyVersion: version,
        });
      }
    }
    expect(held).toBe(store.size);

    // The base is read through: retention leaves it, however long retired (the seed's own
    // version, retired and read by nobody, goes).
    expect((await redecision.pruneRetired(db.db, 0, 100n)).versions).toBe(1);
    expect(await rowsOf(old)).toBe(ids.length);
    expect((await sql<{ n: string }>`SELECT count(DISTINCT policy_version) AS n FROM decisions`.execute(db.db)).rows[0]!.n).toBe('2');

    // The expiry job finds a base decision that expired (of an image the version has no row for),
    // not one the version replaced, and decides it under the version.
    const past = new Date(Date.now() - 60_000);
    const [untouched, touched] = await Promise.all(
      ['NOT EXISTS', 'EXISTS'].map(async (how) => {
        const r = await sql<{ id: string }>`
          SELECT manifest_id::text AS id FROM decisions b WHERE policy_version = ${old}
            AND ${sql.raw(how)} (SELECT 1 FROM decisions v WHERE v.manifest_id = b.manifest_id AND v.policy_version = ${version})
          ORDER BY manifest_id LIMIT 1`.execute(db.db);
        return r.rows[0]!.id;
      }),
    );
    await sql`UPDATE decisions SET expires_at = ${past} WHERE policy_version = ${old} AND manifest_id IN (${untouched}, ${touched})`.execute(db.db);
    expect(await decisions.expiringBy(db.db, version, new Date(), 10)).toEqual([untouched]);
    expect((await decisions.nextExpiry(db.db, version))?.getTime()).toBe(past.getTime());
    expect(await d.decideExpired()).toBe(1);
    expect(await decisions.expiringBy(db.db, version, new Date(), 10)).toEqual([]);
    expect(await rowsOf(version)).toBe(switched.decided + 1);

    // A restart carries the rest over and lets the base go.
    const restarted = await decider(after).redecide();
    expect(restarted).toMatchObject({ kind: 'unchanged', base: old, decided: 0, carried: ids.length - switched.decided - 1, complete: true, switchMs: null });
    expect(await redecision.baseOf(db.db, version)).toBeNull();
    expect(await rowsOf(version)).toBe(ids.length);
    expect(await readers(version)).toEqual(window);
    // What a full re-decision gives.
    expect(await decider(after).redecide({ full: true })).toMatchObject({ kind: 'full', decided: ids.length });
    expect(await readers(version)).toEqual(window);
    // Now the old version is retired and read through by nobody.
    expect((await redecision.pruneRetired(db.db, 0, 100n)).deleted).toBe(ids.length);
  });

  it('an edit no decision reads switches at once and carries everything over, at a restart too', async () => {
    const from = decider(after);
    expect(await from.redecide()).toMatchObject({ kind: 'unchanged', complete: true });
    const exempting = { ...after, exemptions: [{ images: ['ghcr.io/org1/**'], reason: 'incident 42', expires: '2099-01-01T00:00:00Z' }] };
    const switched = await decider(exempting).redecide({ carry: false });
    expect(switched).toMatchObject({ kind: 'incremental', base: from.policy.version, decided: 0, carried: 0, complete: true });
    const version = parsePolicy(stringify(exempting)).version;
    expect(await redecision.baseOf(db.db, version)).toBe(from.policy.version);
    expect((await decisions.listRange(db.db, version, '0', String(ids.length + 1))).length).toBe(ids.length);
    expect(await decider(exempting).redecide()).toMatchObject({ kind: 'unchanged', decided: 0, carried: ids.length, complete: true });
    expect(await redecision.baseOf(db.db, version)).toBeNull();
  });
});
