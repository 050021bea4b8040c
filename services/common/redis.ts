import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';
import type { OutageLog } from './outage.ts';

/**
 * `producer` connections fail fast (no offline queue, one retry) so ingest can answer 503 at once
 * when Redis is down; `worker` connections retry forever, as BullMQ workers require.
 */
export function createRedis(url: string, role: 'producer' | 'worker', log: Logger, outage?: OutageLog): Redis {
  const redis = new Redis(url, {
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
