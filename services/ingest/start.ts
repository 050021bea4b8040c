import type { Queue } from 'bullmq';
import { WEBHOOK_SOURCES } from '../common/domain/registry-event.ts';
import { hostAllowlist } from '../common/domain/host-allowlist.ts';
import { INDEX_QUEUE } from '../common/jobs/index-manifest.ts';
import type { Platform } from '../common/platform.ts';
import { registerIngestRoutes } from './server.ts';

export interface IngestRole {
  /** The index queue this role produces to (the API's learn jobs reuse it). */
  readonly queue: Queue;
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
  });
  if (opts.readiness) {
    platform.checks.push({ name: 'redis', check: () => connection.ping() });
  }
  return { queue };
}
