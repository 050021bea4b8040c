import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WEBHOOK_SOURCES } from '../common/domain/registry-event.ts';
import { hostAllowlist } from '../common/domain/host-allowlist.ts';
import { createHttpServer } from '../common/http.ts';
import { createLogger } from '../common/logger.ts';
import { type IngestDeps, registerIngestRoutes } from './server.ts';

/**
 * The ingest routes alone, over deps that are never reached: every request these tests send is
 * refused before the database, the queue or Redis would be asked.
 */
function routesOnly(opts: Pick<IngestDeps, 'secrets' | 'maxBodyBytes'>): FastifyInstance {
  const log = createLogger({ logLevel: 'silent' });
  const app = createHttpServer(log, []);
  registerIngestRoutes(app, {
    db: {} as IngestDeps['db'],
    allowedRegistries: hostAllowlist([]),
    queue: {} as IngestDeps['queue'],
    log,
    maxSignedBodyBytes: 1024,
    maxUnverifiedBodies: 1,
    ...opts,
  });
  return app;
}

describe('ingest routes', () => {
  let app: FastifyInstance;

  beforeAll(async () => {
    // No secret is configured, so every delivery is refused before the database, the queue or
    // Redis would be asked: none is needed.
    app = routesOnly({ secrets: [], maxBodyBytes: 1024 });
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers an unknown source 404, naming the sources there are, whatever its body', async () => {
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await app.inject({ method: 'POST', url: '/webhooks/no-such-source', headers: { 'content-type': contentType }, payload: '{' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({
        error: 'unknown_source',
        message: `no webhook source "no-such-source": deliveries go to POST /webhooks/<source>, one of ${WEBHOOK_SOURCES.join(', ')}`,
      });
    }
  });

  it('answers another method on a known source 405, saying deliveries are POSTed', async () => {
    const res = await app.inject({ method: 'GET', url: '/webhooks/harbor' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.json()).toMatchObject({ error: 'method_not_allowed' });
  });

  it.each(WEBHOOK_SOURCES)('has a route for %s', async (source) => {
    const res = await app.inject({ method: 'POST', url: `/webhooks/${source}`, headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(res.statusCode).not.toBe(404);
    // The source's own handling answered: no secret is configured for it, so it refuses the delivery.
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'unauthorized' });
  });
});

describe('ingest routes: bodies read before their sender is known', () => {
  const SECRET = 'github-secret-0123456789abcdef';
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    // Only wrong signatures are sent, refused before the database, the queue or Redis would be asked.
    app = routesOnly({ secrets: [{ source: 'github', secret: SECRET, registry: null }], maxBodyBytes: 1024 * 1024 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app.close();
  });

  const unsigned = { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` };

  function deliver(payload: string, headers: Record<string, string> = unsigned) {
    return app.inject({ method: 'POST', url: '/webhooks/github', headers, payload });
  }

  it('limits a signing source to maxSignedBodyBytes', async () => {
    expect((await deliver('x'.repeat(1024))).statusCode).toBe(401);
    const res = await deliver('x'.repeat(1025));
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: 'too_large', message: 'body exceeds 1024 bytes' });
  });

  it('gives the slot back however a request ends', async () => {
    // One slot: had any of these kept it, the next would be 503.
    expect((await deliver('{}')).statusCode).toBe(401);
    expect((await deliver('x'.repeat(2048))).statusCode).toBe(413);
    expect((await deliver('{}', { ...unsigned, 'content-type': 'text/plain' })).statusCode).toBe(415);
    expect((await app.inject({ method: 'POST', url: '/webhooks/github', headers: unsigned })).statusCode).toBe(401);
    expect((await deliver('{}')).statusCode).toBe(401);
  });

  it('answers 503 with Retry-After at once while the slots are taken, and serves again once the sender goes', async () => {
    const slow = connect(port, '127.0.0.1');
    slow.on('error', () => undefined);
    slow.write(`POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 1000\r\n\r\n{`);
    await vi.waitFor(async () => expect((await deliver('{}')).statusCode).toBe(503));
    const busy = await deliver('{}');
    expect(busy.headers['retry-after']).toBe('5');
    expect(busy.json()).toMatchObject({ error: 'busy' });
    slow.destroy();
    await vi.waitFor(async () => expect((await deliver('{}')).statusCode).toBe(401));
  });
});
