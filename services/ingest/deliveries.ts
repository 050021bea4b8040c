import type { IncomingHttpHeaders } from 'node:http';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely, Transaction } from 'kysely';
import * as deliveries from '../common/db/queries/deliveries.ts';
import * as images from '../common/db/queries/images.ts';
import * as repositories from '../common/db/queries/repositories.ts';
import * as tags from '../common/db/queries/tags.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { parseCosignTag, type Digest } from '../common/domain/digest.ts';
import type { HostAllowlist } from '../common/domain/host-allowlist.ts';
import type { NormalizedDelivery, RegistryEvent, SkippedEvent } from '../common/domain/registry-event.ts';
import { WebhookError } from '../common/errors.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import { addJob } from '../common/jobs/define-job.ts';
import { IndexManifestJob, indexJobFor, ResolveTagJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import { authenticate, type ConfiguredSecret, sha256, type SourceSecret, sourceSecrets, verifyHmac } from './authentication.ts';
import type { NormalizeContext } from './registries/delivery-builder.ts';
import { headerValue, type Source } from './sources.ts';

export interface DeliveryDeps {
  readonly db: Kysely<DB>;
  /** Registries whose events are acted on; events for any other are rejected. */
  readonly allowedRegistries: HostAllowlist;
  readonly queue: Queue;
  readonly log: Logger;
  /** Where tag moves are announced to API replicas (the ledger-events channel). */
  readonly publisher: Redis;
  readonly prefix: string;
}

/** One delivery as received. */
export interface IncomingDelivery {
  readonly raw: Buffer;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddr: string;
  /** The secret that authenticated the request before its body was read ({@link DeliveryIntake.authenticate}). */
  readonly sender: SourceSecret | null;
  /** Where to log about this delivery (the request's logger). */
  readonly log: Pick<Logger, 'info' | 'warn'>;
}

/** What a sender is told of an accepted delivery. */
export interface DeliveryReceipt {
  readonly queued: readonly string[];
  readonly ignored: readonly SkippedEvent[];
  readonly rejected: readonly SkippedEvent[];
}

/**
 * Takes one source's webhook deliveries: authenticate, validate, normalise, enqueue with
 * deterministic job ids, record tag moves and the delivery, announce tag moves. Never calls a
 * registry. Refusals are {@link WebhookError}s; Redis or Postgres trouble surfaces at once (as
 * `UNAVAILABLE` or the driver's error), so the registry redelivers (jobs collapse by id).
 */
export class DeliveryIntake {
  readonly source: Source;
  readonly #secrets: readonly SourceSecret[];
  readonly #deps: DeliveryDeps;

  constructor(source: Source, secrets: readonly ConfiguredSecret[], deps: DeliveryDeps) {
    this.source = source;
    this.#secrets = sourceSecrets(secrets, source.name);
    this.#deps = deps;
  }

  /**
   * Authenticates a request before its body is read: the secret it presents, or null when the
   * source signs its bodies (checked by {@link accept}). Throws `UNAUTHORIZED`.
   */
  authenticate(headers: IncomingHttpHeaders, token: string | null): SourceSecret | null {
    return authenticate(this.source, this.#secrets, headers, token);
  }

  async accept(incoming: IncomingDelivery): Promise<DeliveryReceipt> {
    const delivery = this.#validate(incoming);
    const jobIds = await this.#enqueue(delivery, incoming.log);
    const announcements = await this.#record(incoming, delivery, jobIds);
    await publishEvents(this.#deps.publisher, this.#deps.prefix, announcements).catch((err: unknown) => {
      incoming.log.warn({ err }, 'could not announce tag moves; API replicas read them from Postgres on a miss');
    });
    incoming.log.info({ source: this.source.name, jobs: jobIds.length, ignored: delivery.ignored.length, rejected: delivery.rejected.length }, 'webhook accepted');
    return { queued: jobIds, ignored: delivery.ignored, rejected: delivery.rejected };
  }

  /** The delivery's events, once its body is proven (signed sources), parsed and normalised. */
  #validate({ raw, headers, sender }: IncomingDelivery): NormalizedDelivery {
    const source = this.source;
    const from = source.auth === 'hmac-sha256' ? verifyHmac(this.#secrets, headers, raw) : sender;
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new WebhookError('MALFORMED', `body is not JSON: ${(err as Error).message}`);
    }
    const ctx: NormalizeContext = {
      registry: from?.registry ?? null,
      deliveryId: source.deliveryIdHeader === undefined ? null : headerValue(headers[source.deliveryIdHeader])?.slice(0, 256) ?? null,
      bodyHash: sha256(raw).toString('hex'),
      receivedAt: new Date().toISOString(),
    };
    const delivery = refuseUnknownRegistries(source.normalize(body, ctx, headers), this.#deps.allowedRegistries);
    if (source.refuseUnusable && delivery.events.length === 0 && delivery.rejected.length > 0) {
      throw new WebhookError('MALFORMED', `nothing in the delivery is usable: ${delivery.rejected.map((r) => r.reason).join(' | ')}`.slice(0, 2000));
    }
    return delivery;
  }

  /** Queues a job per push and tag push, and drops the finished push job of a deleted digest. */
  async #enqueue(delivery: NormalizedDelivery, log: IncomingDelivery['log']): Promise<string[]> {
    const { queue } = this.#deps;
    const jobIds: string[] = [];
    try {
      for (const event of delivery.events) {
        if (event.kind === 'push') {
          jobIds.push(await addJob(queue, IndexManifestJob, indexJobFor(event)));
        } else if (event.kind === 'tag-push') {
          const { registry, repository, tag, eventId, at } = event;
          jobIds.push(await addJob(queue, ResolveTagJob, { registry, repository, tag, source: this.source.name, eventId, eventAt: at }));
        } else if (event.digest !== null) {
          await forgetPushJob(queue, event.registry, event.repository, event.digest, this.#deps.log);
        }
      }
    } catch (err) {
      log.warn({ err }, 'cannot queue webhook jobs; answering 503 so the registry redelivers');
      throw new WebhookError('UNAVAILABLE', 'the job queue is unavailable', { cause: err });
    }
    return jobIds;
  }

  /** Records the facts the events state and the delivery itself in one transaction; returns the tag moves to announce. */
  async #record(incoming: IncomingDelivery, delivery: NormalizedDelivery, jobIds: readonly string[]): Promise<LedgerEvent[]> {
    const result = summary(jobIds.length, delivery);
    const announcements: LedgerEvent[] = [];
    await this.#deps.db.transaction().execute(async (trx) => {
      // Repository locks are taken in one global order, so concurrent deliveries cannot deadlock.
      const ordered = [...delivery.events].sort((a, b) => lockOrder(a).localeCompare(lockOrder(b)));
      for (const event of ordered) {
        const announced = await recordEventFacts(trx, event);
        if (announced !== null) {
          announcements.push(announced);
        }
      }
      await deliveries.record(trx, {
        source: this.source.name,
        remoteAddr: incoming.remoteAddr,
        contentType: incoming.headers['content-type'] ?? null,
        // The status the sender is answered: the delivery is accepted.
        statusCode: 202,
        result,
        eventCount: delivery.events.length + delivery.ignored.length + delivery.rejected.length,
        jobIds,
        payload: incoming.raw.toString('utf8'),
      });
    });
    return announcements;
  }
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
  await repositories.lock(trx, event.registry, event.repository);
  const repositoryId = await repositories.ensure(trx, event.registry, event.repository);
  if (event.kind === 'push' && event.tag !== null) {
    const change = await tags.recordPush(trx, repositoryId, event.tag, event.digest, new Date(event.at));
    return change === 'created' || change === 'moved'
      ? { type: 'tag', registry: event.registry, repository: event.repository, tag: event.tag, digest: event.digest, at: event.at }
      : null;
  }
  if (event.kind === 'delete' && event.digest !== null) {
    await images.markDeleted(trx, repositoryId, event.digest, new Date(event.at));
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
