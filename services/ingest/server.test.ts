import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_SOURCES } from '../common/domain/registry-event.ts';
import { hostAllowlist } from '../common/domain/host-allowlist.ts';
import { createHttpServer } from '../common/http.ts';
import { createLogger } from '../common/logger.ts';
import { type IngestDeps, registerIngestRoutes } from './server.ts';

describe('ingest routes', () => {
  let app: FastifyInstance;

  beforeAll(async () => {
    const log = createLogger({ logLevel: 'silent' });
    // No secret is configured, so every delivery is refused before the database, the queue or
    // Redis would be asked: none is needed.
    const deps: IngestDeps = {
      db: {} as IngestDeps['db'],
      allowedRegistries: hostAllowlist([]),
      queue: {} as IngestDeps['queue'],
      log,
      secrets: [],
      maxBodyBytes: 1024,
      publisher: {} as IngestDeps['publisher'],
      prefix: 'test',
    };
    app = createHttpServer(log, []);
    registerIngestRoutes(app, deps);
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers an unknown source with the framework 404', async () => {
    const res = await app.inject({ method: 'POST', url: '/webhooks/no-such-source', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(res.statusCode).toBe(404);
  });

  it.each(WEBHOOK_SOURCES)('has a route for %s', async (source) => {
    const res = await app.inject({ method: 'POST', url: `/webhooks/${source}`, headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(res.statusCode).not.toBe(404);
    // The source's own handling answered: no secret is configured for it, so it refuses the delivery.
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'unauthorized' });
  });
});
