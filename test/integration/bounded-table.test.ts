// A bounded decision table (SIGNET_DECISION_TABLE_MAX): an API replica over a ledger larger than
// its bound loads only the most recently decided images, answers an older one from Postgres and
// keeps it, and never holds more than the bound.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  signet = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml'), SIGNET_DECISION_TABLE_MAX: String(MAX) });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

const entries = async () => Number(/^signet_decision_table_entries (\d+)/m.exec((await signet.app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
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
});
