// A bounded decision table (SIGNET_DECISION_TABLE_MAX): an API replica over a ledger larger than
// its bound loads only the most recently decided images and the most recently updated tags,
// answers an older one from Postgres and keeps it, and never holds more than the bound. The loads'
// pages (by time, then id) neither skip nor repeat a row when many share a time.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as decisionQueries from '../../services/common/db/queries/decisions.ts';
import * as tagQueries from '../../services/common/db/queries/tags.ts';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { ask } from '../helpers/decisions.ts';
import { seedAllowedImages } from '../helpers/ledger.ts';
import { startTestSignet, type TestSignet } from '../helpers/signet.ts';

const POLICY = `allow_with_verification:
  registry.example.com:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;
const MAX = 1_000;
const IMAGES = 1_500;
const digests = Array.from({ length: IMAGES }, (_, i) => sha256Digest(`image ${i}`));

let db: TestDb;
let signet: TestSignet;
let tmp: string;

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-bounded-'));
  await writeFile(join(tmp, 'policy.yaml'), POLICY);
  await seedAllowedImages(db.db, {
    registry: 'registry.example.com',
    repository: 'team/app',
    digests,
    policyVersion: parsePolicy(POLICY).version,
    signer: { subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
  });
  // Image i was decided i seconds after the first: the newest are the last ones.
  await sql`UPDATE decisions d SET decided_at = timestamptz '2026-01-01' + (m.id - (SELECT min(id) FROM manifests)) * interval '1 second'
            FROM manifests m WHERE m.id = d.manifest_id`.execute(db.db);
  // Tag v<i> names image i and was last moved i seconds after the first.
  await sql`INSERT INTO tags (repository_id, name, digest, updated_at)
            SELECT repository_id, 'v' || (id - (SELECT min(id) FROM manifests)), digest,
                   timestamptz '2026-01-01' + (id - (SELECT min(id) FROM manifests)) * interval '1 second'
            FROM manifests`.execute(db.db);
  signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml'), SIGNET_DECISION_TABLE_MAX: String(MAX) });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

const entries = async () => Number(/^signet_decision_table_entries (\d+)/m.exec((await signet.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
const tagsHeld = async () => Number(/^signet_decision_table_tags (\d+)/m.exec((await signet.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
const misses = async () => Number(/^signet_decision_miss_reads\{database="primary"\} (\d+)/m.exec((await signet.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);

describe('a bounded decision table', () => {
  it('loads the most recently decided, answers older ones from Postgres and keeps them, within its bound', async () => {
    expect(await entries()).toBe(MAX);
    // The newest image is in memory: no miss.
    expect(await ask(signet, `registry.example.com/team/app@${digests.at(-1)!}`)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await misses()).toBe(0);
    // The oldest was not loaded: answered from Postgres (a miss), then kept (no second miss).
    const oldest = `registry.example.com/team/app@${digests[0]!}`;
    expect(await ask(signet, oldest)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await misses()).toBe(1);
    expect(await ask(signet, oldest)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await misses()).toBe(1);
    // Asking for every image never holds more than the bound.
    for (const digest of digests.slice(0, 200)) {
      await ask(signet, `registry.example.com/team/app@${digest}`);
    }
    expect(await entries()).toBe(MAX);
  });

  it('loads the most recently updated tags only; an older tag is looked up in Postgres', async () => {
    expect(await tagsHeld()).toBe(MAX);
    const before = await misses();
    expect(await ask(signet, `registry.example.com/team/app:v${IMAGES - 1}`)).toMatchObject({ allowed: true, digest: digests.at(-1) });
    expect(await misses()).toBe(before);
    expect(await ask(signet, 'registry.example.com/team/app:v1')).toMatchObject({ allowed: true, digest: digests[1] });
    expect(await misses()).toBe(before + 1);
  });

  it('pages a load by time then id, without skipping or repeating rows that share a time', async () => {
    // Ten images per microsecond from here on: every page boundary falls inside a run of equal
    // times, and many pages within one millisecond (what a JavaScript Date cannot tell apart).
    await sql`UPDATE decisions SET decided_at = timestamptz '2027-01-01' + (manifest_id / 10) * interval '1 microsecond'`.execute(db.db);
    await sql`UPDATE tags SET updated_at = timestamptz '2027-01-01' + (length(name) + ascii(right(name, 1))) * interval '1 microsecond'`.execute(db.db);
    const version = parsePolicy(POLICY).version;
    const since = new Date('2027-01-01T00:00:00.000Z');
    const decided: string[] = [];
    // Bounded: a cursor that rounds would read the same page again and again.
    for (let after: decisionQueries.DecisionCursor | null = null, pages = 0; pages < IMAGES; pages++) {
      const page = await decisionQueries.listRecentPage(db.db, version, since, after, 7);
      decided.push(...page.map((d) => d.cursor.manifestId));
      if (page.length < 7) {
        break;
      }
      after = page.at(-1)!.cursor;
    }
    const expected = await sql<{ id: string }>`SELECT manifest_id AS id FROM decisions WHERE decided_at >= ${since} ORDER BY decided_at, manifest_id`.execute(db.db);
    expect(expected.rows.length).toBe(IMAGES);
    expect(decided).toEqual(expected.rows.map((r) => r.id));

    const named: string[] = [];
    for (let after: tagQueries.TagPosition | null = null, pages = 0; pages < IMAGES; pages++) {
      const page = await tagQueries.listRecentPage(db.db, null, after, 7);
      named.push(...page.map((t) => t.tag));
      if (page.length < 7) {
        break;
      }
      after = page.at(-1)!.position;
    }
    expect(named).toHaveLength(IMAGES);
    expect(new Set(named).size).toBe(IMAGES);
    const ordered = await sql<{ name: string }>`SELECT name FROM tags ORDER BY updated_at, repository_id, name`.execute(db.db);
    expect(named).toEqual(ordered.rows.map((r) => r.name));
    // The cutoff of a bounded load: the MAXth most recent time, so at least MAX tags are since it.
    const cutoff = await tagQueries.recentCutoff(db.db, MAX);
    const held = await sql<{ n: string }>`SELECT count(*) AS n FROM tags WHERE updated_at >= ${cutoff}`.execute(db.db);
    expect(Number(held.rows[0]!.n)).toBeGreaterThanOrEqual(MAX);
  });
});
