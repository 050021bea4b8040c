import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from './logger.ts';

/** A dependency `/readyz` checks; `check` rejects (or times out) when it is not usable. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<unknown>;
  /**
   * The process still serves without it (an API replica answers decisions from memory when
   * Postgres is down): its failure makes `/readyz` answer 200 `degraded`, not 503.
   */
  readonly degradable?: boolean;
}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * The HTTP host shared by every role: fastify with `/healthz` (the process is alive) and
 * `/readyz` (200 `ready` when every dependency answers, 200 `degraded` when only degradable ones
 * fail, else 503). Routes are added by the roles; `listen()`
 * is main.ts's business.
 */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** When set, clients must present a certificate issued by this CA. */
  readonly clientCa: Buffer | null;
}

/** How long a client may take: a whole request (headers and body), and its headers alone. */
export interface HttpTimeouts {
  readonly requestMs: number;
  /** At most `requestMs`. */
  readonly headersMs: number;
}

const DEFAULT_TIMEOUTS: HttpTimeouts = { requestMs: 30_000, headersMs: 10_000 };

/**
 * How often Node looks for requests past their deadline (its default is 30 s, so a 30 s deadline
 * could be enforced up to a minute late).
 */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export function createHttpServer(log: Logger, checks: readonly ReadinessCheck[], tls: TlsMaterial | null = null, timeouts: HttpTimeouts = DEFAULT_TIMEOUTS): FastifyInstance {
  // Node looks for requests past their deadline on a timer whose period can only be set when the
  // server is constructed (`connectionsCheckingInterval`, 30 s by default), and holds a request to
  // the larger of `requestTimeout` and `headersTimeout` (60 s by default). Fastify sets only
  // `requestTimeout`, after construction: a 30 s deadline was enforced after 60 to 90 s. So all
  // three go into the server's own options. A client that has not sent its headers, or its whole
  // request, in time is answered 408 and its socket closed.
  const serverTimeouts = {
    requestTimeout: timeouts.requestMs,
    headersTimeout: Math.min(timeouts.headersMs, timeouts.requestMs),
    connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_INTERVAL_MS, timeouts.headersMs),
  };
  const app: FastifyInstance = Fastify({
    ...(tls === null
      ? { http: serverTimeouts }
      : {
          https: {
            ...serverTimeouts,
            cert: tls.cert,
            key: tls.key,
            minVersion: 'TLSv1.3' as const,
            ...(tls.clientCa === null ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
          },
        }),
    // pino's Logger is a FastifyBaseLogger; the cast keeps FastifyInstance's default logger generic so
    // roles take a plain FastifyInstance.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: log as FastifyBaseLogger,
    // Roles log what matters per request themselves; fastify's per-request lines are noise at this rate.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Slow or stuck clients must not hold sockets forever: an idle socket is closed after 30 s, and
    // fastify sets the request deadline on the server again (the same value).
    connectionTimeout: 30_000,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: 65_000,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Validate strictly: `{"images": "x"}` is an error, not a one-image batch.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });

  // Every answer names its request id (the caller's `x-request-id` when it sent a sane one): the
  // same id is on every log line of the request.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });

  app.get('/healthz', (_req, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      checks.map(async (c) => {
        try {
          await Promise.race([
            c.check(),
            new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS).unref()),
          ]);
          return [c.name, 'ok', c] as const;
        } catch (err) {
          return [c.name, `unavailable: ${(err as Error).message}`, c] as const;
        }
      }),
    );
    const failed = results.filter(([, r]) => r !== 'ok');
    const status = failed.length === 0 ? 'ready' : failed.every(([, , c]) => c.degradable === true) ? 'degraded' : 'not_ready';
    return reply.code(status === 'not_ready' ? 503 : 200).send({ status, checks: Object.fromEntries(results.map(([n, r]) => [n, r])) });
  });

  return app;
}
