import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, type Db } from '../../services/common/db/client.ts';
import { createLogger } from '../../services/common/logger.ts';

export const PG_SERVER = process.env.SIGNET_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432';
// Two checkouts running their suites at once on one server keep apart by namespace.
const NAMESPACE = process.env.SIGNET_TEST_NAMESPACE ?? 'signet';
if (!/^[a-z][a-z0-9_]{0,30}$/.test(NAMESPACE)) {
  throw new Error(`SIGNET_TEST_NAMESPACE must match ^[a-z][a-z0-9_]{0,30}$: ${NAMESPACE}`);
}
export const TEMPLATE_DB = `${NAMESPACE}_tmpl`;
export const TEST_DB_PREFIX = `${NAMESPACE}_test_`;

export interface TestDb {
  readonly url: string;
  readonly db: Db;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database cloned from the template that global-setup migrated. */
export async function createTestDb(): Promise<TestDb> {
  const name = `${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE ${c.escapeIdentifier(TEMPLATE_DB)}`));
  const url = `${PG_SERVER}/${name}`;
  const db = createDb(url, createLogger({ logLevel: 'silent' }));
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}
