import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.ts';

/** Routes whose requests are decision requests (the admission hot path), by their route pattern. */
const DECISION_ROUTES = new Set(['/v1/decisions', '/verify', '/gatekeeper/validate', '/gatekeeper/mutate', '/admission/validate', '/admission/mutate']);

/**
 * `GET /metrics` (Prometheus text format; open, like /healthz: it carries no secret), and the
 * per-request series counted from fastify's onResponse hook — webhook deliveries by source and
 * status, decision requests by endpoint and status with their latency. One hook, two Set/Map
 * lookups per request.
 */
export function registerMetrics(app: FastifyInstance, metrics: Metrics): void {
  serveMetrics(app, metrics);
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url;
    if (route !== undefined) {
      if (DECISION_ROUTES.has(route)) {
        metrics.decisionRequests.inc({ endpoint: route, status: String(reply.statusCode) });
        metrics.decisionDuration.observe({ endpoint: route }, reply.elapsedTime / 1000);
      } else if (route.startsWith('/webhooks/')) {
        const source = (req.params as { source?: string } | undefined)?.source ?? route.slice('/webhooks/'.length);
        metrics.webhookDeliveries.inc({ source: source.slice(0, 32), status: String(reply.statusCode) });
      }
    }
    done();
  });
}

/** Only `GET /metrics`: on the main server, or alone on the plain-HTTP metrics port (SIGNET_METRICS_PORT). */
export function serveMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.get('/metrics', async (_req, reply) => {
    const text = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });
}
