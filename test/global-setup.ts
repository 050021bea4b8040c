import { existsSync } from 'node:fs';
import pg from 'pg';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';
import { PG_SERVER, TEMPLATE_DB, TEST_DB_PREFIX } from './helpers/db.ts';
import { FIXTURES } from './helpers/fixtures.ts';

/** Creates and migrates a template database once per run; each test file clones it (CREATE DATABASE … TEMPLATE). */
export default async function setup(): Promise<void> {
  if (!existsSync(FIXTURES)) {
    throw new Error(`fixtures not found at ${FIXTURES} (they ship in test/fixtures; SIGNET_FIXTURES overrides)`);
  }
  const admin = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await admin.connect();
  try {
    // Leftover clones from an interrupted run would otherwise pile up.
    const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [
      TEST_DB_PREFIX,
    ]);
    for (const { datname } of rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(datname)} WITH (FORCE)`);
    }
    // The template is made anew each run: one migrated by an older checkout (whose migrations sort
    // differently) would otherwise refuse this checkout's migrations as out of order.
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(TEMPLATE_DB)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  const url = `${PG_SERVER}/${TEMPLATE_DB}`;
  await ensureDatabase(url);
  const db = createDb(url, createLogger({ logLevel: 'warn' }));
  await migrateToLatest(db);
  await db.destroy();
}
