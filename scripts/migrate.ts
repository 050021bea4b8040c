// Creates the database if needed and applies pending migrations. Exit code 1 on any failure.
import { loadConfig } from '../services/common/config.ts';
import { openDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';

const config = loadConfig(process.env);
const log = createLogger(config, { role: 'migrate' });
try {
  if (await ensureDatabase(config.database.url)) {
    log.info('created database');
  }
  const db = openDb(config.database, log);
  const applied = await migrateToLatest(db);
  log.info({ applied }, applied.length === 0 ? 'database is up to date' : 'migrations applied');
  await db.destroy();
} catch (err) {
  log.error({ err }, 'migration failed');
  process.exitCode = 1;
}
