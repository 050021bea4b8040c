import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { RedisClient } from './redis.ts';
import { sql } from 'kysely';
import { packageVersion } from './build-info.ts';
import type { Config } from './config.ts';
import { type Db, openDb } from './db/client.ts';
import { ensureDatabase, isConnectionError, migrateToLatest } from './db/migrate.ts';
import { createHttpServer, type ReadinessCheck, type TlsMaterial } from './http.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { registerMetrics, serveMetrics } from './metrics-routes.ts';
import { addressOf, OutageLog } from './outage.ts';
import { createRedis } from './redis.ts';
import type { ShutdownStep } from './shutdown.ts';

/**
 * When a shutdown step runs: intake stops first, then consumers drain their jobs, then the queues
 * they fed and read close, then the connections under them, and the database last.
 */
export type ShutdownPhase = 'intake' | 'consumers' | 'queues' | 'connections' | 'database';
const PHASES: readonly ShutdownPhase[] = ['intake', 'consumers', 'queues', 'connections', 'database'];

/**
 * What every role starts from (Hive's `service-common`): the migrated database, the HTTP server
 * with `/healthz`, `/readyz` and `/metrics`, and factories for Redis connections and queues that
 * attach their error listeners and register their shutdown step, so no role can forget either.
 */
export interface Platform {
  readonly config: Config;
  readonly log: Logger;
  readonly db: Db;
  /**
   * Where reads that may lag go (GraphQL, decision misses): the streaming replica of
   * DATABASE_READ_URL, or `db` when none is set. Its lag is the reader's to handle.
   */
  readonly readDb: Db;
  readonly app: FastifyInstance;
  readonly metrics: Metrics;
  /** What `/readyz` checks; roles add theirs before listening. */
  readonly checks: ReadinessCheck[];
  /** The one account of Redis outages every connection, queue and worker reports to. */
  readonly redisOutage: OutageLog;
  /** The one account of Postgres outages: the pool's connections and the decision table's reloads and lookups. */
  readonly postgresOutage: OutageLog;
  /** A Redis connection closed in the `connections` phase. */
  redis(role: 'producer' | 'worker', name: string): RedisClient;
  /**
   * A queue over `connection`, with an error listener, closed in the `queues` phase. `observe`
   * reports its job counts on `/metrics` (each queue name once).
   */
  queue(name: string, connection: RedisClient, opts?: { observe?: boolean; label?: string }): Queue;
  onShutdown(phase: ShutdownPhase, name: string, run: () => Promise<unknown>): void;
  /** The shutdown steps, ordered by phase (and by registration within one). */
  shutdownSteps(): ShutdownStep[];
  /** Starts serving; resolves to the base URL. */
  listen(): Promise<string>;
}

/** About a minute of waiting for Postgres at start-up (backoff 0.5 s doubling to 5 s). */
const STARTUP_DB_ATTEMPTS = 15;

/**
 * Creates (if needed) and migrates the database, waiting for Postgres while it is unreachable:
 * Postgres may be restarting while Signet starts (or restarts), which is no reason to exit.
 */
export async function openDatabase(config: Config, log: Logger, outage?: OutageLog): Promise<Db> {
  const db = openDb(config.database, log, { outage });
  for (let attempt = 1; ; attempt++) {
    try {
      if (await ensureDatabase(config.database.url)) {
        log.info('created the database');
      }
      const applied = await migrateToLatest(db);
      if (applied.length > 0) {
        log.info({ applied }, 'applied migrations');
      }
      return db;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      if (attempt >= STARTUP_DB_ATTEMPTS || !isConnectionError(cause)) {
        await db.destroy();
        throw err;
      }
      // One line per attempt naming what and where; the stack of a refused connection says nothing more.
      const address = addressOf(config.database.url, 5432);
      const message = cause instanceof Error ? cause.message : String(cause);
      log.warn({ dependency: 'postgres', address, attempt, error: message }, `waiting for postgres at ${address} (attempt ${attempt} of ${STARTUP_DB_ATTEMPTS}): ${message}`);
      await sleep(Math.min(5_000, 250 * 2 ** attempt));
    }
  }
}

async function readTls(config: Config): Promise<TlsMaterial | null> {
  const tls = config.http.tls;
  if (tls === null) {
    return null;
  }
  return {
    cert: await readFile(tls.certPath),
    key: await readFile(tls.keyPath),
    clientCa: tls.clientCaPath === null ? null : await readFile(tls.clientCaPath),
  };
}

/**
 * The platform for the roles in `config.roles`. An API-only replica answers decisions from memory
 * without Postgres, so there Postgres is a degradable readiness check.
 */
export async function startPlatform(config: Config, log: Logger): Promise<Platform> {
  const postgresOutage = new OutageLog(log, 'postgres', addressOf(config.database.url, 5432));
  const db = await openDatabase(config, log, postgresOutage);
  const roles = new Set(config.roles);
  const apiOnly = roles.has('api') && !roles.has('ingest') && !roles.has('worker');
  const checks: ReadinessCheck[] = [{ name: 'postgres', check: () => sql`SELECT 1`.execute(db), degradable: apiOnly }];
  const app = createHttpServer(log, checks, await readTls(config), config.http.timeouts);
  const metrics = createMetrics({ version: packageVersion(), revision: config.revision });
  registerMetrics(app, metrics);
  const steps = new Map<ShutdownPhase, ShutdownStep[]>(PHASES.map((p) => [p, []]));
  const onShutdown = (phase: ShutdownPhase, name: string, run: () => Promise<unknown>) => steps.get(phase)!.push({ name, run });
  onShutdown('intake', 'http', () => app.close());
  onShutdown('database', 'postgres', () => db.destroy());
  const readDb = config.database.readUrl === null ? db : openDb({ ...config.database, url: config.database.readUrl }, log);
  if (readDb !== db) {
    onShutdown('database', 'postgres-replica', () => readDb.destroy());
  }
  const observed = new Map<string, Queue>();
  const redisOutage = new OutageLog(log, 'redis', addressOf(config.redis.url, 6379));
  return {
    config,
    log,
    db,
    readDb,
    app,
    metrics,
    checks,
    redisOutage,
    postgresOutage,
    onShutdown,
    redis(role, name) {
      const redis = createRedis(config.redis, role, log, redisOutage);
      // A connection closed earlier (a stream follower's, at its stop) has nothing left to quit.
      onShutdown('connections', `${name}-redis`, () => (redis.status === 'end' ? Promise.resolve() : redis.quit()));
      return redis;
    },
    queue(name, connection, opts = {}) {
      const queue = new Queue(name, { connection, prefix: config.redis.queuePrefix });
      const label = opts.label ?? name;
      queue.on('error', (err) => redisOutage.error(err, `${label} queue`));
      onShutdown('queues', `${label}-queue`, () => queue.close());
      if (opts.observe === true && !observed.has(name)) {
        observed.set(name, queue);
      }
      return queue;
    },
    shutdownSteps: () => PHASES.flatMap((p) => steps.get(p)!),
    async listen() {
      if (observed.size > 0) {
        metrics.gauge('signet_queue_jobs', 'Jobs in each queue by state (read from Redis on scrape).', ['queue', 'state'], async (g) => {
          for (const [name, q] of observed) {
            const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children');
            for (const [state, n] of Object.entries(counts)) {
              g.set({ queue: name, state }, n);
            }
          }
        });
      }
      if (config.http.metricsPort !== null) {
        const scrape = Fastify({ logger: false });
        serveMetrics(scrape, metrics);
        await scrape.listen({ host: config.http.host, port: config.http.metricsPort });
        onShutdown('intake', 'metrics-http', () => scrape.close());
        log.info({ port: (scrape.server.address() as AddressInfo).port }, 'serving /metrics over plain HTTP');
      }
      return app.listen({ host: config.http.host, port: config.http.port });
    },
  };
}
