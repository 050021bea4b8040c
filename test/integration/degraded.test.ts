// Degraded service: an API replica whose Postgres goes away keeps answering what it holds in
// memory, says so on /readyz (200 degraded, not 503), and denies — never allows — what it cannot
// look up. The outage is a TCP proxy in front of the real Postgres, cut and restored.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { createTestDb, PG_SERVER, type TestDb } from '../helpers/db.ts';
import { seedTeamApp } from '../helpers/ledger.ts';
import { eventually, startTestSignet, type TestSignet } from '../helpers/signet.ts';
import { startPostgresProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const POLICY = `allow_with_verification:
  registry.example.com:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;

let db: TestDb;
let proxy: TcpProxy;
let signet: TestSignet;
let tmp: string;
const known = sha256Digest('known image');

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-degraded-'));
  await writeFile(join(tmp, 'policy.yaml'), POLICY);
  // The ledger as the worker leaves it: one image, decided allowed under the policy.
  await seedTeamApp(db.db, POLICY, [known]);
  let url: string;
  ({ proxy, url } = await startPostgresProxy(PG_SERVER, db.url));
  signet = await startTestSignet({ DATABASE_URL: url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml') });
});

afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

const ask = async (image: string) => (await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(image)}` })).json();
const readyz = async () => {
  const res = await signet.app.inject({ method: 'GET', url: '/readyz' });
  return { code: res.statusCode, body: res.json<{ status: string; checks: Record<string, string> }>() };
};

describe('an API replica with Postgres down', () => {
  it('answers from memory, reports degraded, denies what it cannot look up, and recovers', async () => {
    expect(await readyz()).toMatchObject({ code: 200, body: { status: 'ready' } });
    expect(await ask(`registry.example.com/team/app@${known}`)).toMatchObject({ allowed: true, reason: 'verified', stale: false });

    proxy.cut();
    const degraded = await readyz();
    expect(degraded.code).toBe(200);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.checks.postgres).toMatch(/^unavailable/);
    // In memory: answered as before.
    expect(await ask(`registry.example.com/team/app@${known}`)).toMatchObject({ allowed: true, reason: 'verified' });
    // Not in memory: Postgres would be asked; it cannot be, so deny — never allow on an error.
    const other = await ask(`registry.example.com/team/app@${sha256Digest('never seen')}`);
    expect(other).toMatchObject({ allowed: false, reason: 'unknown', stale: true });
    expect(other.message).toContain('the ledger is unreachable');

    proxy.restore();
    await eventually(async () => ((await readyz()).body.status === 'ready' ? true : undefined), 'ready again', 15_000);
    const never = await ask(`registry.example.com/team/app@${sha256Digest('never seen')}`);
    expect(never).toMatchObject({ allowed: false, reason: 'unknown', stale: false });
    // It says how to get the image indexed.
    expect(never.message).toContain('has not been indexed by Signet');
    expect(never.message).toContain('`signet backfill registry.example.com/team/app`');
  });
});
