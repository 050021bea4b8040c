// Migrates a scratch database and regenerates services/common/db/schema.generated.ts from it.
// CI runs this and fails if the checked-in file differs (`git diff --exit-code`).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';

const server = process.env.CODEGEN_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
const url = `${server}/signet_codegen_${process.pid}`;
const out = fileURLToPath(new URL('../services/common/db/schema.generated.ts', import.meta.url));
const log = createLogger({ logLevel: 'warn' });

await ensureDatabase(url);
const db = createDb(url, log);
try {
  await migrateToLatest(db);
  execFileSync(
    fileURLToPath(new URL('../node_modules/.bin/kysely-codegen', import.meta.url)),
    ['--dialect', 'postgres', '--url', url, '--out-file', out, '--exclude-pattern', 'kysely_migration*'],
    { stdio: 'inherit' },
  );
} finally {
  await db.destroy();
  const admin = new pg.Client({ connectionString: `${server}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(new URL(url).pathname.slice(1))}`);
  await admin.end();
}
