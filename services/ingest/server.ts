import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WebhookError } from '../common/errors.ts';
import type { ConfiguredSecret, SourceSecret } from './authentication.ts';
import { type DeliveryDeps, DeliveryIntake } from './deliveries.ts';
import { SOURCES } from './sources.ts';

export interface IngestDeps extends DeliveryDeps {
  /**
   * Secrets per source (config.webhookSecrets). A source without any refuses every delivery;
   * a secret with a registry names the registry its deliveries come from.
   */
  readonly secrets: readonly ConfiguredSecret[];
  readonly maxBodyBytes: number;
}

const STATUS: Record<WebhookError['code'], number> = {
  UNAUTHORIZED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MALFORMED: 400,
  UNAVAILABLE: 503,
};

/** What a route can fail with: a refusal, or fastify's own errors (body parsing, limits). */
type RouteError = Error & { statusCode?: number; code?: string };

/** Which configured secret authenticated a request (the registry it names travels with it). */
const authenticated = new WeakMap<FastifyRequest, SourceSecret>();

/**
 * `POST /webhooks/<source>` for every source: the body size-limited and its content type checked
 * here, the delivery taken by the source's {@link DeliveryIntake}, answered 202 — or its refusal
 * mapped to a status. Redis or Postgres unavailable → 503 at once, so the registry redelivers.
 */
export function registerIngestRoutes(app: FastifyInstance, deps: IngestDeps): void {
  for (const source of SOURCES) {
    const intake = new DeliveryIntake(source, deps.secrets, deps);
    void app.register((scope, _opts, done) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser([...source.contentTypes], { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes }, (_req, body, next) => next(null, body));
      // Anything else (or no content type) is answered 415 by this catch-all rather than parsed.
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes }, (req, _body, next) => {
        next(new WebhookError('UNSUPPORTED_MEDIA_TYPE', `content type ${JSON.stringify(req.headers['content-type'] ?? null)} is not one of ${source.contentTypes.join(', ')}`), undefined);
      });
      scope.setErrorHandler((err: RouteError, req, reply) => answerError(err, req, reply, deps.maxBodyBytes));
      // Authenticate before the body is read, so unauthenticated senders cannot make us parse it.
      scope.addHook('onRequest', (req, _reply, done) => {
        try {
          const token = (req.query as Record<string, unknown> | undefined)?.token;
          const sender = intake.authenticate(req.headers, typeof token === 'string' ? token : null);
          if (sender !== null) {
            authenticated.set(req, sender);
          }
          done();
        } catch (err) {
          done(err as Error);
        }
      });
      scope.post(`/webhooks/${source.name}`, async (req, reply) => {
        const receipt = await intake.accept({ raw: req.body as Buffer, headers: req.headers, remoteAddr: req.ip, sender: authenticated.get(req) ?? null, log: req.log });
        return reply.code(202).send(receipt);
      });
      done();
    });
  }
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
