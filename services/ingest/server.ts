import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Kysely, Transaction } from 'kysely';
import { parseCosignTag, type Digest } from '../common/domain/digest.ts';
import type { HostAllowlist } from '../common/domain/host-allowlist.ts';
import type { NormalizedDelivery, RegistryEvent, WebhookSource } from '../common/domain/registry-event.ts';
import { recordDelivery } from '../common/db/queries/deliveries.ts';
import { markManifestDeleted } from '../common/db/queries/manifests.ts';
import { ensureRepository, lockRepository } from '../common/db/queries/repositories.ts';
import { recordTagPush } from '../common/db/queries/tags.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { WebhookError } from '../common/errors.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import { addJob } from '../common/jobs/define-job.ts';
import { IndexManifestJob, indexJobFor, ResolveTagJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import type { NormalizeContext } from './registries/delivery-builder.ts';
import { headerValue, type Source, SOURCES } from './sources.ts';

export interface IngestDeps {
  readonly db: Kysely<DB>;
  /** Registries whose events are acted on; events for any other are rejected. */
  readonly allowedRegistries: HostAllowlist;
  readonly queue: Queue;
  readonly log: Logger;
  /**
   * Secrets per source (config.webhookSecrets). A source without any refuses every delivery;
   * a secret with a registry names the registry its deliveries come from.
   */
  readonly secrets: readonly { readonly source: WebhookSource; readonly secret: string; readonly registry: string | null }[];
  readonly maxBodyBytes: number;
  /** Where tag moves are announced to API replicas (the ledger-events channel). */
  readonly publisher: Redis;
  readonly prefix: string;
}

const STATUS: Record<WebhookError['code'], number> = {
  UNAUTHORIZED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MALFORMED: 400,
  UNAVAILABLE: 503,
};

interface SourceSecret {
  readonly secret: string;
  /** sha256 of the secret: fixed-length, so comparisons are constant-time whatever its length. */
  readonly digest: Buffer;
  readonly registry: string | null;
}

/** Which configured secret authenticated a request (the registry it names travels with it). */
const authenticated = new WeakMap<FastifyRequest, SourceSecret>();

/**
 * `POST /webhooks/<source>`: authenticate, size-limit, validate, normalise, enqueue with
 * deterministic job ids, record tag moves and the delivery, answer 202. Never calls a registry.
 * Redis or Postgres unavailable → 503 at once, so the registry redelivers (jobs collapse by id).
 */
export function registerIngestRoutes(app: FastifyInstance, deps: IngestDeps): void {
  for (const source of SOURCES) {
    const secrets: SourceSecret[] = deps.secrets
      .filter((s) => s.source === source.name)
      .map((s) => ({ secret: s.secret, digest: sha256(s.secret), registry: s.registry }));
    void app.register((scope, _opts, done) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(
        [...source.contentTypes],
        { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes },
        (_req, body, next) => next(null, body),
      );
      // Anything else (or no content type) is answered 415 by this catch-all rather than parsed.
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes }, (req, _body, next) => {
        next(new WebhookError('UNSUPPORTED_MEDIA_TYPE', `content type ${JSON.stringify(req.headers['content-type'] ?? null)} is not one of ${source.contentTypes.join(', ')}`), undefined);
      });
      scope.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
        if (err instanceof WebhookError) {
          return reply.code(STATUS[err.code]).send({ error: err.code.toLowerCase(), message: err.message });
        }
        if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
          return reply.code(413).send({ error: 'too_large', message: `body exceeds ${deps.maxBodyBytes} bytes` });
        }
        if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
          return reply.code(415).send({ error: 'unsupported_media_type', message: err.message });
        }
        if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
          return reply.code(err.statusCode).send({ error: 'bad_request', message: err.message });
        }
        req.log.error({ err }, 'webhook failed');
        return reply.code(503).send({ error: 'unavailable', message: 'Signet cannot accept the delivery now; retry later' });
      });
      // Authenticate before the body is read, so unauthenticated senders cannot make us parse 1 MiB
      // (an HMAC needs the body: its header must at least be there and well-formed).
      scope.addHook('onRequest', (req, _reply, done) => {
        try {
          authenticateRequest(source, secrets, req);
          done();
        } catch (err) {
          done(err as Error);
        }
      });
      scope.post(`/webhooks/${source.name}`, async (req, reply) => handleDelivery(source, secrets, deps, req, reply));
      done();
    });
  }
}

function sha256(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The secret whose digest equals `presented`'s, comparing against every one (constant-time each). */
function matchSecret(secrets: readonly SourceSecret[], presented: string): SourceSecret | undefined {
  const digest = sha256(presented);
  let found: SourceSecret | undefined;
  for (const s of secrets) {
    if (timingSafeEqual(digest, s.digest) && found === undefined) {
      found = s;
    }
  }
  return found;
}

function authenticateRequest(source: Source, secrets: readonly SourceSecret[], req: FastifyRequest): void {
  if (secrets.length === 0) {
    throw new WebhookError('UNAUTHORIZED', `webhooks from ${source.name} are disabled: no secret is configured (SIGNET_WEBHOOK_SECRET_${source.name.toUpperCase()}, the registries file or SIGNET_WEBHOOK_TOKEN)`);
  }
  if (source.auth === 'hmac-sha256') {
    if (!/^sha256=[0-9a-f]{64}$/i.test(headerValue(req.headers['x-hub-signature-256']) ?? '')) {
      throw new WebhookError('UNAUTHORIZED', 'missing or malformed X-Hub-Signature-256 header');
    }
    return;
  }
  const header = headerValue(req.headers.authorization);
  const candidates = header === null ? [] : [header.replace(/^Bearer\s+/i, '').trim()];
  if (source.auth === 'url-token') {
    const token = (req.query as Record<string, unknown> | undefined)?.token;
    if (typeof token === 'string') {
      candidates.push(token);
    }
  }
  for (const c of candidates) {
    const match = matchSecret(secrets, c);
    if (match !== undefined) {
      authenticated.set(req, match);
      return;
    }
  }
  throw new WebhookError('UNAUTHORIZED', source.auth === 'url-token' ? 'missing or wrong token (?token= or Authorization)' : 'missing or wrong secret in the Authorization header');
}

/** GitHub's signature: HMAC-SHA256 of the raw body under one of the secrets, compared in constant time. */
function verifyHmac(secrets: readonly SourceSecret[], req: FastifyRequest, raw: Buffer): SourceSecret {
  const presented = Buffer.from((headerValue(req.headers['x-hub-signature-256']) ?? '').slice('sha256='.length), 'hex');
  let found: SourceSecret | undefined;
  for (const s of secrets) {
    const expected = createHmac('sha256', s.secret).update(raw).digest();
    if (presented.length === expected.length && timingSafeEqual(presented, expected) && found === undefined) {
      found = s;
    }
  }
  if (found === undefined) {
    throw new WebhookError('UNAUTHORIZED', 'X-Hub-Signature-256 does not match the body under any configured secret');
  }
  return found;
}

async function handleDelivery(source: Source, secrets: readonly SourceSecret[], deps: IngestDeps, req: FastifyRequest, reply: FastifyReply) {
  const raw = req.body as Buffer;
  const sender = source.auth === 'hmac-sha256' ? verifyHmac(secrets, req, raw) : authenticated.get(req);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new WebhookError('MALFORMED', `body is not JSON: ${(err as Error).message}`);
  }
  const ctx: NormalizeContext = {
    registry: sender?.registry ?? null,
    deliveryId: source.deliveryIdHeader === undefined ? null : headerValue(req.headers[source.deliveryIdHeader])?.slice(0, 256) ?? null,
    bodyHash: sha256(raw).toString('hex'),
    receivedAt: new Date().toISOString(),
  };
  const delivery = refuseUnknownRegistries(source.normalize(body, ctx, req.headers), deps.allowedRegistries);
  if (source.refuseUnusable && delivery.events.length === 0 && delivery.rejected.length > 0) {
    throw new WebhookError('MALFORMED', `nothing in the delivery is usable: ${delivery.rejected.map((r) => r.reason).join(' | ')}`.slice(0, 2000));
  }

  const jobIds: string[] = [];
  try {
    for (const event of delivery.events) {
      if (event.kind === 'push') {
        jobIds.push(await addJob(deps.queue, IndexManifestJob, indexJobFor(event)));
      } else if (event.kind === 'tag-push') {
        const { registry, repository, tag, eventId, at } = event;
        jobIds.push(await addJob(deps.queue, ResolveTagJob, { registry, repository, tag, source: source.name, eventId, eventAt: at }));
      } else if (event.digest !== null) {
        await forgetPushJob(deps.queue, event.registry, event.repository, event.digest, deps.log);
      }
    }
  } catch (err) {
    req.log.warn({ err }, 'cannot queue webhook jobs; answering 503 so the registry redelivers');
    throw new WebhookError('UNAVAILABLE', 'the job queue is unavailable', { cause: err });
  }

  const result = summary(jobIds.length, delivery);
  const announcements: LedgerEvent[] = [];
  await deps.db.transaction().execute(async (trx) => {
    // Repository locks are taken in one global order, so concurrent deliveries cannot deadlock.
    const ordered = [...delivery.events].sort((a, b) => lockOrder(a).localeCompare(lockOrder(b)));
    for (const event of ordered) {
      const announced = await recordEventFacts(trx, event);
      if (announced !== null) {
        announcements.push(announced);
      }
    }
    await recordDelivery(trx, {
      source: source.name,
      remoteAddr: req.ip,
      contentType: req.headers['content-type'] ?? null,
      statusCode: 202,
      result,
      eventCount: delivery.events.length + delivery.ignored.length + delivery.rejected.length,
      jobIds,
      payload: raw.toString('utf8'),
    });
  });
  await publishEvents(deps.publisher, deps.prefix, announcements).catch((err: unknown) => {
    req.log.warn({ err }, 'could not announce tag moves; API replicas read them from Postgres on a miss');
  });
  req.log.info({ source: source.name, jobs: jobIds.length, ignored: delivery.ignored.length, rejected: delivery.rejected.length }, 'webhook accepted');
  return reply.code(202).send({ queued: jobIds, ignored: delivery.ignored, rejected: delivery.rejected });
}


/**
 * A completed push job is kept a day so redeliveries collapse onto it; after a delete, the same
 * digest pushed again must be indexed again (and unmarked), so its finished job is dropped.
 */
async function forgetPushJob(queue: Queue, registry: string, repository: string, digest: Digest, log: Logger): Promise<void> {
  const jobId = IndexManifestJob.jobId({ registry, repository, digest, trigger: { kind: 'push' }, eventAt: new Date().toISOString() });
  const state = await queue.getJobState(jobId);
  if (state === 'completed' || state === 'failed') {
    await queue.remove(jobId).catch((err: unknown) => log.warn({ err, jobId }, 'could not drop the push job of a deleted manifest'));
  }
}

/** Tag moves and deletes are facts the event itself states; they need no registry call. */
async function recordEventFacts(trx: Transaction<DB>, event: RegistryEvent): Promise<LedgerEvent | null> {
  const cosign = event.tag === null ? null : parseCosignTag(event.tag);
  if (event.kind === 'tag-push' || (event.kind === 'push' && (event.tag === null || cosign !== null))) {
    // Pushed by digest, or a cosign artifact tag (its history is the signatures table's business);
    // a tag push's tag is recorded once the worker has resolved it.
    return null;
  }
  await lockRepository(trx, event.registry, event.repository);
  const repositoryId = await ensureRepository(trx, event.registry, event.repository);
  if (event.kind === 'push' && event.tag !== null) {
    const change = await recordTagPush(trx, repositoryId, event.tag, event.digest, new Date(event.at));
    return change === 'created' || change === 'moved'
      ? { type: 'tag', registry: event.registry, repository: event.repository, tag: event.tag, digest: event.digest, at: event.at }
      : null;
  }
  if (event.kind === 'delete' && event.digest !== null) {
    await markManifestDeleted(trx, repositoryId, event.digest, new Date(event.at));
  }
  return null;
}

function lockOrder(e: RegistryEvent): string {
  return `${e.registry}/${e.repository}`;
}

/**
 * Events for registries Signet is not configured to contact become rejections: a webhook must not
 * be able to send the worker to an arbitrary host (SSRF), and nothing is queued for them.
 */
function refuseUnknownRegistries(d: NormalizedDelivery, allowed: HostAllowlist): NormalizedDelivery {
  const refused = d.events.filter((e) => !allowed.allowsRegistry(e.registry));
  if (refused.length === 0) {
    return d;
  }
  return {
    ...d,
    events: d.events.filter((e) => !refused.includes(e)),
    rejected: [
      ...d.rejected,
      ...refused.map((e) => ({
        index: -1,
        eventId: e.eventId,
        reason: `registry ${e.registry} is not one Signet may contact (SIGNET_ALLOWED_REGISTRIES or the registries file)`,
      })),
    ],
  };
}

function summary(queued: number, d: NormalizedDelivery): string {
  const parts = [`queued ${queued}`];
  if (d.ignored.length > 0) {
    parts.push(`ignored ${d.ignored.length}`);
  }
  if (d.rejected.length > 0) {
    parts.push(`rejected ${d.rejected.length}: ${d.rejected.map((r) => r.reason).join(' | ')}`.slice(0, 2000));
  }
  const resolving = d.events.filter((e) => e.kind === 'tag-push');
  if (resolving.length > 0) {
    parts.push(`tags to resolve ${resolving.length}: ${resolving.map((e) => e.reason).join(' | ')}`.slice(0, 2000));
  }
  const deletes = d.events.filter((e) => e.kind === 'delete').length;
  if (deletes > 0) {
    parts.push(`deletes ${deletes}`);
  }
  return parts.join(', ');
}
