import { createHash, timingSafeEqual } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Kysely, Transaction } from 'kysely';
import { parseCosignTag } from '../common/domain/digest.ts';
import type { NormalizedDelivery, RegistryEvent } from '../common/domain/registry-event.ts';
import { recordDelivery } from '../common/db/queries/deliveries.ts';
import { markManifestDeleted } from '../common/db/queries/manifests.ts';
import { ensureRepository, lockRepository } from '../common/db/queries/repositories.ts';
import { recordTagPush } from '../common/db/queries/tags.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { WebhookError } from '../common/errors.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import { IndexManifestJob, type IndexManifestData } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import { DISTRIBUTION_CONTENT_TYPES, normalizeDistribution } from './registries/distribution.ts';

export interface IngestDeps {
  readonly db: Kysely<DB>;
  readonly queue: Queue;
  readonly log: Logger;
  /** Bearer token webhooks must present; null refuses every webhook. */
  readonly token: string | null;
  readonly maxBodyBytes: number;
  /** Where tag moves are announced to API replicas (the ledger-events channel). */
  readonly publisher: Redis;
  readonly prefix: string;
}

interface Source {
  readonly name: string;
  readonly contentTypes: readonly string[];
  normalize(body: unknown): NormalizedDelivery;
}

const SOURCES: readonly Source[] = [
  { name: 'distribution', contentTypes: DISTRIBUTION_CONTENT_TYPES, normalize: normalizeDistribution },
];

const STATUS: Record<WebhookError['code'], number> = {
  UNAUTHORIZED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MALFORMED: 400,
  UNAVAILABLE: 503,
};

/**
 * `POST /webhooks/<source>`: authenticate, size-limit, validate, normalise, enqueue with
 * deterministic job ids, record tag moves and the delivery, answer 202. Never calls a registry.
 * Redis or Postgres unavailable → 503 at once, so the registry redelivers (jobs collapse by id).
 */
export function registerIngestRoutes(app: FastifyInstance, deps: IngestDeps): void {
  const expected = deps.token === null ? null : sha256(deps.token);
  for (const source of SOURCES) {
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
      // Authenticate before the body is read, so unauthenticated senders cannot make us parse 1 MiB.
      scope.addHook('onRequest', (req, _reply, done) => {
        try {
          authenticate(expected, req.headers.authorization);
          done();
        } catch (err) {
          done(err as Error);
        }
      });
      scope.post(`/webhooks/${source.name}`, async (req, reply) => handleDelivery(source, deps, req, reply));
      done();
    });
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function authenticate(expected: Buffer | null, header: string | undefined): void {
  if (expected === null) {
    throw new WebhookError('UNAUTHORIZED', 'webhooks are disabled: SIGNET_WEBHOOK_TOKEN is not set');
  }
  const match = /^Bearer (.+)$/i.exec(header ?? '');
  // Comparing fixed-length hashes keeps the comparison constant-time whatever the token's length.
  if (match === null || !timingSafeEqual(sha256(match[1]!.trim()), expected)) {
    throw new WebhookError('UNAUTHORIZED', 'missing or wrong bearer token');
  }
}

async function handleDelivery(source: Source, deps: IngestDeps, req: FastifyRequest, reply: FastifyReply) {
  const raw = req.body as Buffer;
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new WebhookError('MALFORMED', `body is not JSON: ${(err as Error).message}`);
  }
  const delivery = source.normalize(body);
  const jobs = delivery.events.flatMap((e) => (e.kind === 'push' ? [toJob(e)] : []));

  const jobIds: string[] = [];
  try {
    for (const data of jobs) {
      const parsed = IndexManifestJob.schema.parse(data);
      // add() rather than addBulk(): BullMQ dedupes by jobId on add.
      const job = await deps.queue.add(IndexManifestJob.name, parsed, {
        ...IndexManifestJob.options,
        jobId: IndexManifestJob.jobId(parsed),
      });
      jobIds.push(job.id ?? IndexManifestJob.jobId(parsed));
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

function toJob(e: Extract<RegistryEvent, { kind: 'push' }>): IndexManifestData {
  const cosign = e.tag === null ? null : parseCosignTag(e.tag);
  return {
    registry: e.registry,
    repository: e.repository,
    digest: cosign?.kind === 'sig' || cosign?.kind === 'att' ? cosign.subject : e.digest,
    trigger:
      cosign?.kind === 'sig' || cosign?.kind === 'att'
        ? { kind: 'signature', artifactDigest: e.digest, tag: e.tag ?? '' }
        : { kind: 'push' },
    eventAt: e.at,
  };
}

/** Tag moves and deletes are facts the event itself states; they need no registry call. */
async function recordEventFacts(trx: Transaction<DB>, event: RegistryEvent): Promise<LedgerEvent | null> {
  const cosign = event.tag === null ? null : parseCosignTag(event.tag);
  if (event.kind === 'push' && (event.tag === null || cosign !== null)) {
    // Pushed by digest, or a cosign artifact tag (its history is the signatures table's business).
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

function summary(queued: number, d: NormalizedDelivery): string {
  const parts = [`queued ${queued}`];
  if (d.ignored.length > 0) {
    parts.push(`ignored ${d.ignored.length}`);
  }
  if (d.rejected.length > 0) {
    parts.push(`rejected ${d.rejected.length}: ${d.rejected.map((r) => r.reason).join(' | ')}`.slice(0, 2000));
  }
  const deletes = d.events.filter((e) => e.kind === 'delete').length;
  if (deletes > 0) {
    parts.push(`deletes ${deletes}`);
  }
  return parts.join(', ');
}
