// The rows every ledger write starts from (repositories.ensure, identities.ensure): created on
// first sight, then found with one statement, the same id every time.
import type { KyselyPlugin, Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as identities from '../../services/common/db/queries/identities.ts';
import * as repositories from '../../services/common/db/queries/repositories.ts';
import type { DB } from '../../services/common/db/schema.generated.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';

let test: TestDb;

beforeAll(async () => {
  test = await createTestDb();
});

afterAll(async () => {
  await test?.drop();
});

/** Runs `work` in a transaction and counts the statements it sent. */
async function counted<T>(work: (trx: Transaction<DB>) => Promise<T>): Promise<{ result: T; statements: number }> {
  let statements = 0;
  const counter: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: (args) => {
      statements++;
      return Promise.resolve(args.result);
    },
  };
  const result = await test.db.transaction().execute((trx) => work(trx.withPlugin(counter)));
  return { result, statements };
}

describe('ensure', () => {
  it('creates a registry and repository once, then finds the repository with one statement', async () => {
    const first = await counted((trx) => repositories.ensure(trx, 'ensure.example', 'team/app'));
    expect(first.statements).toBe(5);
    const again = await counted((trx) => repositories.ensure(trx, 'ensure.example', 'team/app'));
    expect(again).toEqual({ result: first.result, statements: 1 });
    // Another repository of the same registry, and the same name in another registry, are others.
    const sibling = await counted((trx) => repositories.ensure(trx, 'ensure.example', 'team/web'));
    const elsewhere = await counted((trx) => repositories.ensure(trx, 'other.example', 'team/app'));
    expect(new Set([first.result, sibling.result, elsewhere.result]).size).toBe(3);
    const rows = await test.db.selectFrom('repositories').select('id').execute();
    expect(rows).toHaveLength(3);
  });

  it('creates an identity once, with or without an issuer, then finds it with one statement', async () => {
    for (const issuer of ['https://accounts.example.com', null]) {
      const identity = { kind: 'email' as const, subject: 'alice@example.com', issuer };
      const first = await counted((trx) => identities.ensure(trx, identity));
      expect(first.statements).toBe(2);
      const again = await counted((trx) => identities.ensure(trx, identity));
      expect(again).toEqual({ result: first.result, statements: 1 });
    }
    const rows = await test.db.selectFrom('identities').select(['subject', 'issuer']).orderBy('id').execute();
    expect(rows).toEqual([
      { subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
      { subject: 'alice@example.com', issuer: null },
    ]);
  });
});
