import type { Queue } from 'bullmq';
import { WEBHOOK_SOURCES } from '../common/domain/registry-event.ts';
import { hostAllowlist } from '../common/domain/host-allowlist.ts';
import { INDEX_QUEUE } from '../common/jobs/index-manifest.ts';
import type { Platform } from '../common/platform.ts';
import type { RedisClient } from '../common/redis.ts';
import { registerIngestRoutes } from './server.ts';

export interface IngestRole {
  /** The index queue this role produces to (the API's learn jobs reuse it). */
  readonly queue: Queue;
}

/** How long a delivery waits for Redis replicas to acknowledge its jobs before it is answered 503. */
const REPLICA_WAIT_MS = 2_000;

/** WAIT on the connection that queued the jobs: the replicas acknowledge every write it made. */
async function confirmReplicated(connection: RedisClient, replicas: number): Promise<void> {
  const acknowledged = await connection.wait(replicas, REPLICA_WAIT_MS);
  if (acknowledged < replicas) {
    throw new Error(`${acknowledged} of the ${replicas} Redis replicas SIGNET_REDIS_WAIT_REPLICAS asks for hold the queued jobs`);
  }
}

/**
 * The ingest role: registry webhooks, authenticated, validated, recorded and queued. Its Redis
 * connection fails fast, so a delivery is answered 503 at once when Redis is down.
 */
export function startIngestRole(platform: Platform, opts: { readiness: boolean }): IngestRole {
  const { config, log } = platform;
  const connection = platform.redis('producer', 'producer');
  const queue = platform.queue(INDEX_QUEUE, connection, { observe: true });
  const silent = WEBHOOK_SOURCES.filter((source) => !config.webhookSecrets.some((s) => s.source === source));
  if (silent.length > 0) {
    log.warn({ sources: silent }, 'no webhook secret for these sources: their deliveries will be refused with 401');
  }
  if (config.registry.allowed.length === 0) {
    log.warn('no registry is allowed (SIGNET_ALLOWED_REGISTRIES, the registries file): every webhook event will be rejected');
  }
  registerIngestRoutes(platform.app, {
    db: platform.db,
    allowedRegistries: hostAllowlist(config.registry.allowed),
    queue,
    log: log.child({ component: 'ingest' }),
    secrets: config.webhookSecrets,
    maxBodyBytes: config.http.maxWebhookBytes,
    maxSignedBodyBytes: config.http.maxSignedWebhookBytes,
    maxUnverifiedBodies: config.http.maxUnverifiedWebhooks,
    ...(config.redis.waitReplicas === 0 ? {} : { confirmQueued: () => confirmReplicated(connection, config.redis.waitReplicas) }),
  });
  if (opts.readiness) {
    platform.checks.push({ name: 'redis', check: () => connection.ping() });
  }
  return { queue };
}
