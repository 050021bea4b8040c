import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WebhookError } from '../common/errors.ts';
import type { ConfiguredSecret, SourceSecret } from './authentication.ts';
import { type DeliveryDeps, DeliveryIntake, DeliveryWriter } from './deliveries.ts';
import { SOURCES } from './sources.ts';

export interface IngestDeps extends DeliveryDeps {
  /**
   * Secrets per source (config.webhookSecrets). A source without any refuses every delivery;
   * a secret with a registry names the registry its deliveries come from, and that registry takes
   * deliveries with no other secret (403).
   */
  readonly secrets: readonly ConfiguredSecret[];
  readonly maxBodyBytes: number;
  /**
   * Body limit of the sources that sign their bodies (`hmac-sha256`): a stranger can make Signet
   * read this much before the signature can be checked, so it is far below `maxBodyBytes`.
   */
  readonly maxSignedBodyBytes: number;
  /**
   * Bodies of signing sources read at once, process-wide, before their signature is checked; a
   * request beyond it is answered 503 with `Retry-After` before its body is read.
   */
  readonly maxUnverifiedBodies: number;
}

/** Seconds a sender refused for too many unverified bodies at once is asked to wait. */
const BUSY_RETRY_AFTER_S = 5;

const STATUS: Record<WebhookError['code'], number> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MALFORMED: 400,
  UNAVAILABLE: 503,
};

/** What a route can fail with: a refusal, or fastify's own errors (body parsing, limits). */
type RouteError = Error & { statusCode?: number; code?: string };

/** Which configured secret authenticated a request (the registry it names travels with it). */
const authenticated = new WeakMap<FastifyRequest, SourceSecret>();

/**
 * Slots for bodies read before their sender is authenticated. Each is held from the request's
 * arrival until its body is read (or refused, or the client goes): the body is then checked at
 * once, so at most `max` such bodies are in memory at any time.
 */
class UnverifiedBodies {
  readonly #max: number;
  #inFlight = 0;
  readonly #held = new WeakMap<FastifyRequest, () => void>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot for `req`, or returns false when all are taken. */
  tryAcquire(req: FastifyRequest): boolean {
    if (this.#inFlight >= this.#max) {
      return false;
    }
    this.#inFlight += 1;
    let held = true;
    const release = () => {
      if (held) {
        held = false;
        this.#inFlight -= 1;
        this.#held.delete(req);
      }
    };
    this.#held.set(req, release);
    // However the request ends (read, refused, timed out, the client gone), the slot comes back.
    req.raw.once('close', release);
    return true;
  }

  release(req: FastifyRequest): void {
    this.#held.get(req)?.();
  }
}

/**
 * `POST /webhooks/<source>` for every source: the body size-limited and its content type checked
 * here, the delivery taken by the source's {@link DeliveryIntake}, answered 202 — or its refusal
 * mapped to a status. Redis or Postgres unavailable → 503 at once, so the registry redelivers.
 *
 * Sources with a secret in the headers or URL are authenticated before any of the body is read.
 * A source that signs its bodies can only be checked once the body is read: its bodies get the small
 * `maxSignedBodyBytes` limit, and only `maxUnverifiedBodies` of them are read at once.
 */
export function registerIngestRoutes(app: FastifyInstance, deps: IngestDeps): void {
  const unverified = new UnverifiedBodies(deps.maxUnverifiedBodies);
  const writer = new DeliveryWriter(deps);
  for (const source of SOURCES) {
    const intake = new DeliveryIntake(source, deps.secrets, deps, writer);
    const signed = source.auth === 'hmac-sha256';
    const bodyLimit = signed ? deps.maxSignedBodyBytes : deps.maxBodyBytes;
    void app.register((scope, _opts, done) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser([...source.contentTypes], { parseAs: 'buffer', bodyLimit }, (req, body, next) => {
        // Read: the handler checks its signature before anything else.
        unverified.release(req);
        next(null, body);
      });
      // Anything else (or no content type) is answered 415 by this catch-all rather than parsed.
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (req, _body, next) => {
        unverified.release(req);
        next(new WebhookError('UNSUPPORTED_MEDIA_TYPE', `content type ${JSON.stringify(req.headers['content-type'] ?? null)} is not one of ${source.contentTypes.join(', ')}`), undefined);
      });
      scope.setErrorHandler((err: RouteError, req, reply) => {
        unverified.release(req);
        return answerError(err, req, reply, bodyLimit);
      });
      // Authenticate before the body is read, so unauthenticated senders cannot make us read it.
      scope.addHook('onRequest', (req, reply, done) => {
        let sender: SourceSecret | null;
        try {
          const token = (req.query as Record<string, unknown> | undefined)?.token;
          sender = intake.authenticate(req.headers, typeof token === 'string' ? token : null);
        } catch (err) {
          done(err as Error);
          return;
        }
        if (sender !== null) {
          authenticated.set(req, sender);
        } else if (signed && !unverified.tryAcquire(req)) {
          // Refused before its body is read; the connection is closed rather than drained.
          void reply
            .code(503)
            .header('retry-after', String(BUSY_RETRY_AFTER_S))
            .header('connection', 'close')
            .send({ error: 'busy', message: `too many unverified ${source.name} deliveries in flight; retry later` });
          return;
        }
        done();
      });
      scope.post(`/webhooks/${source.name}`, async (req, reply) => {
        const receipt = await intake.accept({ raw: req.body as Buffer, headers: req.headers, remoteAddr: req.ip, sender: authenticated.get(req) ?? null, log: req.log });
        return reply.code(202).send(receipt);
      });
      done();
    });
  }
  registerUnknownSources(app);
}

/**
 * Anything else under `/webhooks/` is answered before its body is read, naming the sources there
 * are: a registry pointed at a misspelt URL tells its operator how to fix it.
 */
function registerUnknownSources(app: FastifyInstance): void {
  const names = SOURCES.map((s) => s.name).join(', ');
  app.route<{ Params: { source: string } }>({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/webhooks/:source',
    onRequest: (req, reply, done) => {
      const { source } = req.params;
      const known = SOURCES.some((s) => s.name === source);
      void reply
        .code(known ? 405 : 404)
        .header('allow', known ? 'POST' : undefined)
        .send(
          known
            ? { error: 'method_not_allowed', message: `deliveries are POSTed to /webhooks/${source}` }
            : { error: 'unknown_source', message: `no webhook source ${JSON.stringify(source)}: deliveries go to POST /webhooks/<source>, one of ${names}` },
        );
      done();
    },
    handler: () => undefined,
  });
}

/** A refused or failed delivery → its status; anything unexpected is a 503 (the registry retries). */
function answerError(err: RouteError, req: FastifyRequest, reply: FastifyReply, maxBodyBytes: number) {
  if (err instanceof WebhookError) {
    return reply.code(STATUS[err.code]).send({ error: err.code.toLowerCase(), message: err.message });
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return reply.code(413).send({ error: 'too_large', message: `body exceeds ${maxBodyBytes} bytes` });
  }
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return reply.code(415).send({ error: 'unsupported_media_type', message: err.message });
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return reply.code(err.statusCode).send({ error: 'bad_request', message: err.message });
  }
  req.log.error({ err }, 'webhook failed');
  return reply.code(503).send({ error: 'unavailable', message: 'Signet cannot accept the delivery now; retry later' });
}
