import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { DB } from '../../common/db/schema.generated.ts';
import { sha256Digest } from '../../common/domain/digest.ts';
import { createLogger } from '../../common/logger.ts';
import { parsePolicy } from '../../common/policy/policy.ts';
import { DecisionTable } from '../decision-table.ts';

// Every answer here comes from memory: the pool is never connected (a query would fail the test).
const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' }) }) });
afterAll(() => db.destroy());

const policy = parsePolicy(`allow_with_verification:
  registry.test:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`);
const digest = sha256Digest('image');
const other = sha256Digest('other');
const decision = (d: typeof digest, allowed: boolean, verifiedAt: string) => ({
  type: 'decision' as const,
  registry: 'registry.test',
  repository: 'team/app',
  digest: d,
  verifiedAt,
  allowed,
  reason: allowed ? ('verified' as const) : ('unsigned' as const),
  message: allowed ? 'signed by alice@example.com' : 'no signature',
  signers: allowed ? [{ subject: 'alice@example.com', issuer: 'https://accounts.example.com' }] : [],
  policyVersion: policy.version,
  rule: 'allow_with_verification.registry.test.team/*',
  mode: 'enforce' as const,
});

describe('DecisionLookup answers from memory', () => {
  it('gives a repeated lookup the same frozen answer, and a new one once the decision changes', async () => {
    const table = new DecisionTable(db, policy, createLogger({ logLevel: 'silent' }));
    table.apply(decision(digest, true, '2026-01-01T00:00:00.000Z'));
    const ref = `registry.test/team/app@${digest}`;
    const first = await table.lookup(ref);
    const again = await table.lookup(ref);
    expect(again).toEqual(first);
    const third = await table.lookup(ref);
    expect(third).toBe(again);
    expect(Object.isFrozen(third)).toBe(true);
    expect(third).toMatchObject({ allowed: true, reason: 'verified', verifiedAt: '2026-01-01T00:00:00.000Z', stale: false });

    table.apply(decision(digest, false, '2026-01-02T00:00:00.000Z'));
    expect(await table.lookup(ref)).toMatchObject({ allowed: false, reason: 'unsigned', verifiedAt: '2026-01-02T00:00:00.000Z' });
  });

  it('never gives a cached allow past its expiry (a time-dependent attestation condition)', async () => {
    const table = new DecisionTable(db, policy, createLogger({ logLevel: 'silent' }));
    const expiresAt = new Date(Date.now() + 300).toISOString();
    table.apply({ ...decision(digest, true, '2026-01-01T00:00:00.000Z'), expiresAt });
    const ref = `registry.test/team/app@${digest}`;
    expect(await table.lookup(ref)).toMatchObject({ allowed: true, expiresAt });
    expect(await table.lookup(ref)).toMatchObject({ allowed: true, expiresAt });
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await table.lookup(ref)).toMatchObject({ allowed: false, reason: 'attestation_failed', expiresAt });
  });

  it('follows a tag to its new digest', async () => {
    const table = new DecisionTable(db, policy, createLogger({ logLevel: 'silent' }));
    table.apply(decision(digest, true, '2026-01-01T00:00:00.000Z'));
    table.apply(decision(other, false, '2026-01-01T00:00:00.000Z'));
    const tag = (d: typeof digest) => ({ type: 'tag' as const, registry: 'registry.test', repository: 'team/app', tag: 'prod', digest: d, at: '2026-01-01T00:00:00.000Z' });
    table.apply(tag(digest));
    await table.lookup('registry.test/team/app:prod');
    expect(await table.lookup('registry.test/team/app:prod')).toMatchObject({ digest, allowed: true });
    table.apply(tag(other));
    expect(await table.lookup('registry.test/team/app:prod')).toMatchObject({ digest: other, allowed: false });
  });
});
