import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startSignet, type Signet } from '../../services/app.ts';
import { loadConfig, type Config } from '../../services/common/config.ts';
import { createLogger } from '../../services/common/logger.ts';

export const TEST_WEBHOOK_TOKEN = 'test-webhook-token-0123456789';
export const TEST_REDIS_URL = process.env.SIGNET_TEST_REDIS ?? 'redis://127.0.0.1:6379';

export interface TestSignet extends Signet {
  readonly config: Config;
  /** Stops every role in order and deletes this instance's queue keys from Redis. */
  stop(): Promise<void>;
}

/**
 * Starts Signet in-process exactly as main.ts does, on a random port, with a queue prefix of its
 * own so parallel test files never share jobs.
 */
export async function startTestSignet(env: Record<string, string>): Promise<TestSignet> {
  const prefix = `signet-test-${randomBytes(4).toString('hex')}`;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: TEST_REDIS_URL,
    SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN,
    SIGNET_QUEUE_PREFIX: prefix,
    SIGNET_REGISTRY_RETRIES: '1',
    // No TUF refresh unless a test asks: the machine is offline, and the roots come from files.
    SIGNET_TUF_REFRESH: '0',
    LOG_LEVEL: process.env.SIGNET_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const signet = await startSignet(config, createLogger(config));
  return {
    ...signet,
    config,
    async stop() {
      for (const step of signet.shutdownSteps) {
        await step.run().catch(() => undefined);
      }
      await deleteQueueKeys(config.redis.url, prefix);
    },
  };
}

export async function deleteQueueKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } catch {
    // Redis may be the thing a test stopped; nothing to clean then.
  } finally {
    redis.disconnect();
  }
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** How many index-manifest jobs of Signet's worker ended with `result`, from its `/metrics`. */
export async function indexJobsEnded(signet: TestSignet, result: string): Promise<number> {
  const series = `signet_job_duration_seconds_count{job="index-manifest",result="${result}"} `;
  const line = (await (await fetch(`${signet.url}/metrics`)).text()).split('\n').find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.slice(series.length));
}
