import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logger.ts';
import type { OutageLog } from '../outage.ts';
import { PreparingPool } from './prepared.ts';
import type { DB } from './schema.generated.ts';

export type Db = Kysely<DB>;

// int8 (bigint) columns come back as strings so 64-bit Rekor log indexes stay exact.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

/**
 * A Kysely instance over a pg.Pool; queries are logged at debug with their duration. With `outage`,
 * lost connections are reported there (one line per interval naming the address) and the first
 * query that succeeds again ends the outage. Statements run repeatedly are sent as named prepared
 * statements (see `prepared.ts`) unless `prepare` is false (SIGNET_PREPARED_STATEMENTS=off).
 */
export function createDb(url: string, log: Logger, opts: { max?: number; statementTimeoutMs?: number; outage?: OutageLog; prepare?: boolean } = {}): Db {
  const outage = opts.outage;
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    application_name: 'signet',
  });
  pool.on('error', (err) => (outage === undefined ? log.error({ err }, 'idle postgres client error') : outage.error(err, 'idle connection')));
  // pg-pool listens for errors only on idle clients. A connection that drops while checked out
  // (Postgres restarted, a network cut mid-query) makes its client emit 'error' with nobody
  // listening — an uncaught exception that kills the process. The query in flight is rejected
  // anyway and the broken client is discarded on release; this listener only keeps us alive.
  pool.on('connect', (client) => {
    client.on('error', (err) => (outage === undefined ? log.warn({ err }, 'postgres connection lost') : outage.error(err, 'connection')));
  });
  return new Kysely<DB>({
    dialect: new PostgresDialect({ pool: opts.prepare === false ? pool : new PreparingPool(pool) }),
    log(event) {
      if (event.level !== 'error') {
        outage?.restored();
      }
      if (event.level === 'error') {
        log.debug({ err: event.error, sql: event.query.sql, ms: event.queryDurationMillis }, 'query failed');
      } else if (log.isLevelEnabled('trace')) {
        log.trace({ sql: event.query.sql, ms: event.queryDurationMillis }, 'query');
      }
    },
  });
}

/** The ledger's database as configured (`config.database`: its URL, SIGNET_PREPARED_STATEMENTS). */
export function openDb(database: { readonly url: string; readonly prepare: boolean }, log: Logger, opts: { outage?: OutageLog } = {}): Db {
  return createDb(database.url, log, { ...opts, prepare: database.prepare });
}
