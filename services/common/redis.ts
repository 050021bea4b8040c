import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './config.ts';
import type { Logger } from './logger.ts';
import type { OutageLog } from './outage.ts';

/** A connection to one Redis (found directly or through Sentinel) or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** What REDIS_URL adds in every topology: credentials, TLS (`rediss:`), the database number. */
function urlOptions(url: string): RedisOptions {
  const u = new URL(url);
  const db = u.pathname.replace(/^\//, '');
  return {
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    ...(db === '' ? {} : { db: Number(db) }),
  };
}

function connect(config: RedisConfig, options: RedisOptions): RedisClient {
  const { topology } = config;
  if (topology.kind === 'cluster') {
    // The cluster client keeps its own offline queue; each node connection takes `options`.
    return new Cluster([...topology.nodes], {
      redisOptions: { ...options, ...urlOptions(config.url), db: 0 },
      enableOfflineQueue: options.enableOfflineQueue,
      clusterRetryStrategy: options.retryStrategy,
    });
  }
  if (topology.kind === 'sentinel') {
    // Sentinel names the master; ioredis follows it across failovers (and reconnects on READONLY).
    return new Redis({ ...options, ...urlOptions(config.url), sentinels: [...topology.sentinels], name: topology.name, failoverDetector: true });
  }
  return new Redis(config.url, options);
}

/**
 * `producer` connections fail fast (no offline queue, one retry) so ingest can answer 503 at once
 * when Redis is down; `worker` connections retry forever, as BullMQ workers require.
 */
export function createRedis(config: RedisConfig, role: 'producer' | 'worker', log: Logger, outage?: OutageLog): RedisClient {
  const redis = connect(config, {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    lazyConnect: false,
  });
  if (outage !== undefined) {
    // The process's one account of Redis outages (see OutageLog).
    redis.on('error', (err: Error) => outage.error(err, `${role} connection`));
    redis.on('ready', () => outage.restored());
    return redis;
  }
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis emits the same error on every reconnect attempt; log changes only.
    if (err.message !== lastError) {
      lastError = err.message;
      log.warn({ err, role }, 'redis connection error');
    }
  });
  redis.on('ready', () => {
    if (lastError !== '') {
      log.info({ role }, 'redis connection restored');
    }
    lastError = '';
  });
  return redis;
}
