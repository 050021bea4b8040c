// Incremental re-decision (core/decider.ts, Decider.redecide) against a synthetic ledger of ~1,650
// images in 5 registries (scripts/lib/seed-ledger.ts): for a series of policy edits, the
// incremental pass (carry over what the edit did not touch, decide the rest) leaves exactly the
// decision table a full re-decision makes; a restart under an unchanged policy decides nothing
// (only images without a decision that counts: new, re-indexed, decided by another Signet
// version), proved on the decider and through a worker process's /metrics.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import type { FeedStream } from '../../services/common/stream-feed.ts';
import { createDecider, type Decider, type RedecideResult } from '../../services/core/decider.ts';
import { seedLedger } from '../../scripts/lib/seed-ledger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { startTestSignet, TEST_REDIS_URL } from '../helpers/signet.ts';

const GITHUB = 'https://token.actions.githubusercontent.com';
const GOOGLE = 'https://accounts.google.com';
const workflows = { 'certificate-identity-regexp': '^https://github\\.com/org[0-9]+/', 'certificate-oidc-issuer': GITHUB };
const developers = { 'certificate-identity-regexp': '^dev[0-9]+@example\\.com$', 'certificate-oidc-issuer': GOOGLE };
const KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

type Doc = Record<string, any>;
/** The starting policy: a rule per registry but the ECR one (not covered), a more specific rule or two, an allow list, a scope. */
const BASE: Doc = {
  allow_with_verification: {
    'ghcr.io': { '**': workflows },
    'docker.io': { '**': developers, 'org1*/**': { ...developers, threshold: 2 } },
    'quay.io': { 'org1*/**': developers, '**': { key: KEY } },
    'registry.example.com': { 'org3/**': workflows, '**': { ...developers, mode: 'warn' } },
  },
  allow_without_verification: { 'quay.io': ['org2*/**'] },
  scopes: { payments: { namespaces: ['pay-*'], allow_with_verification: { 'ghcr.io': { 'org15/svc-15': developers } } } },
};

/** The edits, applied one after the other, with the kind of pass each gives. */
const EDITS: { name: string; kind: RedecideResult['kind']; edit: (d: Doc) => void }[] = [
  { name: 'a rule’s identity', kind: 'incremental', edit: (d) => (d.allow_with_verification['docker.io']['**'] = workflows) },
  { name: 'a more specific rule added (~1% of images)', kind: 'incremental', edit: (d) => (d.allow_with_verification['ghcr.io']['org1[0-9]/**'] = developers) },
  { name: 'an allow-without-verification pattern removed', kind: 'incremental', edit: (d) => delete d.allow_without_verification },
  {
    name: 'exemptions, break-glass and scope namespaces (read at admission only)',
    kind: 'incremental',
    edit: (d) => {
      d.exemptions = [{ images: ['ghcr.io/org1/**'], reason: 'incident 42', expires: '2099-01-01T00:00:00Z' }];
      d.break_glass = { namespaces: ['ops'] };
      d.scopes.payments.namespaces = ['pay-*', 'billing'];
    },
  },
  {
    name: 'an attestation requirement',
    kind: 'incremental',
    edit: (d) => (d.allow_with_verification['ghcr.io']['org1[0-9]/**'] = { ...workflows, attestations: [{ 'predicate-type': 'slsaprovenance1' }] }),
  },
  { name: 'a scope’s rule', kind: 'incremental', edit: (d) => (d.scopes.payments.allow_with_verification['ghcr.io']['org15/svc-15'] = workflows) },
  { name: 'a rule removed', kind: 'incremental', edit: (d) => delete d.allow_with_verification['quay.io']['**'] },
  { name: 'the default mode', kind: 'full', edit: (d) => (d.mode = 'warn') },
  { name: 'a scope added', kind: 'full', edit: (d) => (d.scopes.sandbox = { namespaces: ['sandbox'], mode: 'audit' }) },
];

let db: TestDb;
let redis: Redis;
let stream: FeedStream;
let images: number;
const log = createLogger({ logLevel: 'silent' });

beforeAll(async () => {
  db = await createTestDb();
  await seedLedger(db.db, { signatures: 3000, repositories: 300, identities: 90 });
  images = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM manifests`.execute(db.db)).rows[0]!.n);
  redis = new Redis(TEST_REDIS_URL);
  stream = ledgerStream({ queuePrefix: `signet-redecide-test-${randomBytes(4).toString('hex')}`, feedMaxLen: 1000 });
});

afterAll(async () => {
  await redis?.del(stream.key);
  redis?.disconnect();
  await db?.drop();
});

/** Every decision under `version`, as the API would load it (decided_at aside), in image order. */
async function table(version: string) {
  return (
    await sql<Record<string, unknown>>`
      SELECT manifest_id, allowed, reason, message, signers, rule, mode, scoped, attestations, expires_at, verified_at
      FROM decisions WHERE policy_version = ${version} ORDER BY manifest_id`.execute(db.db)
  ).rows;
}

function decider(doc: Doc): Decider {
  const text = stringify(doc);
  return createDecider({ db: db.db, redis, stream, policy: parsePolicy(text), policySource: text, log });
}

/** Images whose decision differs between two versions (the edit was not a no-op). */
async function differing(a: string, b: string): Promise<number> {
  const r = await sql<{ n: string }>`
    SELECT count(*) AS n FROM decisions x JOIN decisions y ON y.manifest_id = x.manifest_id AND y.policy_version = ${b}
    WHERE x.policy_version = ${a} AND (x.allowed, x.reason, x.message, x.rule, x.mode, x.scoped::text) IS DISTINCT FROM (y.allowed, y.reason, y.message, y.rule, y.mode, y.scoped::text)`.execute(db.db);
  return Number(r.rows[0]!.n);
}

describe('incremental re-decision', () => {
  it('for each edit, gives exactly the decision table a full re-decision gives, deciding only the images the edit touched', async () => {
    let doc = structuredClone(BASE);
    const d = decider(doc);
    const first = await d.redecide();
    // Nothing was decided in full before (the seed's version is no policy): everything.
    expect(first).toMatchObject({ kind: 'full', base: null, decided: images, carried: 0, complete: true });
    let previous = d.policy.version;
    for (const [i, step] of EDITS.entries()) {
      doc = structuredClone(doc);
      step.edit(doc);
      const text = stringify(doc);
      d.setPolicy(parsePolicy(text), text);
      if (i === 3) {
        // Facts change behind the decisions' back (a re-index whose decisions were not made, a
        // worker down): those images' decisions under the previous version must not be carried over.
        await sql`UPDATE signatures SET withdrawn_at = now(), withdrawn_by = 'reindex' WHERE manifest_id IN (SELECT id FROM manifests WHERE id % 97 = 0)`.execute(db.db);
        await sql`UPDATE manifests SET indexed_at = now() WHERE id % 97 = 0`.execute(db.db);
      }
      const incremental = await d.redecide();
      expect(incremental, step.name).toMatchObject({ kind: step.kind, base: previous, complete: true });
      expect(incremental.decided + incremental.carried + incremental.current, step.name).toBe(images);
      if (step.kind === 'incremental') {
        expect(incremental.decided, step.name).toBeLessThan(images);
      }
      const got = await table(d.policy.version);
      expect(got.length, step.name).toBe(images);
      const full = await d.redecide({ full: true });
      expect(full, step.name).toMatchObject({ kind: 'full', decided: images });
      expect(await table(d.policy.version), step.name).toEqual(got);
      if (i !== 3) {
        expect(await differing(previous, d.policy.version), `${step.name} changes some decision`).toBeGreaterThan(0);
      }
      previous = d.policy.version;
    }
  });

  it('a restart under the same policy decides nothing but new, re-indexed and expired images; another Signet version’s decisions do not count', async () => {
    const doc = structuredClone(BASE);
    const text = stringify(doc);
    // Back to a version decided in full earlier, behind the ones since (the last edits changed the
    // mode: the whole ledger), not trusted as is: its decisions that still count stay, the images
    // re-indexed since (1 in 97) are decided again.
    const back = await decider(doc).redecide();
    expect(back).toMatchObject({ kind: 'full', complete: true });
    expect(back.current).toBeGreaterThan(0);
    expect(back.decided).toBeGreaterThanOrEqual(Math.floor(images / 97));

    const restarted = await decider(doc).redecide();
    expect(restarted).toMatchObject({ kind: 'unchanged', decided: 0, carried: 0, current: images, complete: true });

    await sql`UPDATE manifests SET indexed_at = now() WHERE id IN (1, 2, 3)`.execute(db.db);
    await sql`UPDATE decisions SET expires_at = now() - interval '1 second' WHERE manifest_id = 4 AND policy_version = ${parsePolicy(text).version}`.execute(db.db);
    expect(await decider(doc).redecide()).toMatchObject({ kind: 'unchanged', decided: 4, current: images - 4 });

    await sql`UPDATE policies SET decided_by = 'another version' WHERE version = ${parsePolicy(text).version}`.execute(db.db);
    const claimed = await decider(doc).redecide();
    expect(claimed).toMatchObject({ current: 0, complete: true });
    expect(claimed.kind).not.toBe('unchanged');
  });

  it('a pass that wrote decisions analyses them (before the version is complete unless it reads through a base); a pass that wrote none does not', async () => {
    const analyses = async () =>
      Number((await sql<{ n: string }>`SELECT analyze_count + autoanalyze_count AS n FROM pg_stat_user_tables WHERE relname = 'decisions'`.execute(db.db)).rows[0]!.n);
    // Only the pass analyses the table here, not autovacuum.
    await sql`ALTER TABLE decisions SET (autovacuum_enabled = false)`.execute(db.db);
    const doc = structuredClone(BASE);
    doc.allow_with_verification['ghcr.io']['org3[0-9]/**'] = workflows;
    const d = decider(doc);
    const before = await analyses();
    expect((await d.redecide()).complete).toBe(true);
    expect(await analyses()).toBe(before + 1);
    expect(await d.redecide()).toMatchObject({ decided: 0, carried: 0, complete: true });
    expect(await analyses()).toBe(before + 1);
  });

  it('a worker restart with an unchanged policy decides nothing (/metrics)', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'signet-redecide-'));
    try {
      const policy = join(tmp, 'policy.yaml');
      const doc = structuredClone(BASE);
      doc.allow_with_verification['ghcr.io']['org5/**'] = developers;
      await writeFile(policy, stringify(doc));
      const env = { DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_POLICY: policy };
      const metric = async (s: Awaited<ReturnType<typeof startTestSignet>>, series: string) => {
        const text = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
        return Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      };
      let signet = await startTestSignet(env);
      try {
        // The edit touches one organisation's images in one registry: those are decided, the rest carried over.
        const decided = await signet.redecided;
        expect(decided).toBeGreaterThan(0);
        expect(decided).toBeLessThan(images / 10);
        expect(await metric(signet, 'signet_redecide_images_total{action="decided"}')).toBe(decided);
        expect(await metric(signet, 'signet_redecide_images_total{action="carried_over"}')).toBe(images - decided);
        expect(await metric(signet, 'signet_redecide_passes_total{kind="incremental"}')).toBe(1);
        expect(await metric(signet, 'signet_redecide_progress_ratio')).toBe(1);
      } finally {
        await signet.stop();
      }
      signet = await startTestSignet(env);
      try {
        expect(await signet.redecided).toBe(0);
        expect(await metric(signet, 'signet_redecide_images_total{action="decided"}')).toBe(0);
        expect(await metric(signet, 'signet_redecide_images_total{action="already_decided"}')).toBe(images);
        expect(await metric(signet, 'signet_redecide_passes_total{kind="unchanged"}')).toBe(1);
      } finally {
        await signet.stop();
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
