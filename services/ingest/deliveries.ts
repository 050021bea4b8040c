import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Queue } from 'bullmq';
import type { Kysely, Transaction } from 'kysely';
import * as deliveries from '../common/db/queries/deliveries.ts';
import * as images from '../common/db/queries/images.ts';
import * as repositories from '../common/db/queries/repositories.ts';
import * as signatures from '../common/db/queries/signatures.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { parseCosignTag, type Digest } from '../common/domain/digest.ts';
import type { HostAllowlist } from '../common/domain/host-allowlist.ts';
import type { ManifestDeleteEvent, NormalizedDelivery, RegistryEvent, SkippedEvent } from '../common/domain/registry-event.ts';
import { WebhookError } from '../common/errors.ts';
import { addJob, addJobs, type JobToAdd } from '../common/jobs/define-job.ts';
import { IndexManifestData, IndexManifestJob, indexJobFor, ResolveTagJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import {
  authenticate,
  boundRegistries,
  type ConfiguredSecret,
  refuseForeignRegistries,
  sha256,
  type SourceSecret,
  sourceSecrets,
  verifyHmac,
} from './authentication.ts';
import { GroupCommit } from './group-commit.ts';
import type { NormalizeContext } from './registries/delivery-builder.ts';
import { headerValue, type Source } from './sources.ts';

export interface DeliveryDeps {
  readonly db: Kysely<DB>;
  /** Registries whose events are acted on; events for any other are rejected. */
  readonly allowedRegistries: HostAllowlist;
  readonly queue: Queue;
  readonly log: Logger;
  /**
   * Resolves once the jobs just queued are held by enough Redis replicas (SIGNET_REDIS_WAIT_REPLICAS),
   * rejects otherwise: a delivery is answered 202 only when a failover cannot lose its jobs.
   */
  readonly confirmQueued?: () => Promise<void>;
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
 * The two writes every delivery makes — its jobs to Redis, its record to Postgres — shared by every
 * source's intake in a process and grouped across concurrent deliveries ({@link GroupCommit}): the
 * jobs of the deliveries that arrive while a Redis write is in flight go in the next one (one
 * pipeline), their records in one INSERT (one round trip, one commit). A delivery is answered only
 * once the write holding it has succeeded, so grouping changes what a 202 costs, not what it means.
 */
export class DeliveryWriter {
  readonly #jobs: GroupCommit<JobToAdd, string>;
  readonly #records: GroupCommit<deliveries.DeliveryRecord, deliveries.Recorded>;

  constructor(deps: Pick<DeliveryDeps, 'db' | 'queue'>) {
    this.#jobs = new GroupCommit((jobs) => addJobs(deps.queue, jobs));
    this.#records = new GroupCommit((records) => deliveries.recordMany(deps.db, records));
  }

  /** Queues the jobs (each deduplicated by its id); resolves to their ids once Redis holds them all. */
  queue(jobs: readonly JobToAdd[]): Promise<string[]> {
    return Promise.all(jobs.map((j) => this.#jobs.submit(j)));
  }

  /** Records a delivery that states no facts (no delete): resolves once it is committed. */
  record(d: deliveries.DeliveryRecord): Promise<deliveries.Recorded> {
    return this.#records.submit(d);
  }
}

/**
 * Takes one source's webhook deliveries: authenticate, check the sender may speak for the
 * registries it names, validate, normalise, enqueue with deterministic job ids, record deletes and
 * the delivery. Never calls a registry, and records no tag: a tag → digest pair in a delivery is a
 * hint the worker confirms in the registry (`resolve-tag`) before the tag moves. Refusals are
 * {@link WebhookError}s; Redis or Postgres trouble surfaces at once (as `UNAVAILABLE` or the
 * driver's error), so the registry redelivers (jobs collapse by id).
 */
export class DeliveryIntake {
  readonly source: Source;
  readonly #secrets: readonly SourceSecret[];
  /** Registries whose deliveries must carry their own bound secret (any source's). */
  readonly #bound: ReadonlySet<string>;
  readonly #deps: DeliveryDeps;
  readonly #writer: DeliveryWriter;

  /** `writer`: shared by the intakes of one process, so deliveries of every source group together. */
  constructor(source: Source, secrets: readonly ConfiguredSecret[], deps: DeliveryDeps, writer = new DeliveryWriter(deps)) {
    this.source = source;
    this.#secrets = sourceSecrets(secrets, source.name);
    this.#bound = boundRegistries(secrets);
    this.#deps = deps;
    this.#writer = writer;
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
    await this.#record(incoming, delivery, jobIds);
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
    const receivedAt = new Date();
    const ctx: NormalizeContext = {
      registry: from?.registry ?? null,
      deliveryId: source.deliveryIdHeader === undefined ? null : headerValue(headers[source.deliveryIdHeader])?.slice(0, 256) ?? null,
      bodyHash: sha256(raw).toString('hex'),
      receivedAt: receivedAt.toISOString(),
    };
    const normalized = source.normalize(body, ctx, headers);
    refuseForeignRegistries(normalized.events, from, this.#bound);
    const delivery = refuseUnknownRegistries(clampEventTimes(normalized, receivedAt), this.#deps.allowedRegistries);
    if (source.refuseUnusable && delivery.events.length === 0 && delivery.rejected.length > 0) {
      throw new WebhookError('MALFORMED', `nothing in the delivery is usable: ${delivery.rejected.map((r) => r.reason).join(' | ')}`.slice(0, 2000));
    }
    return delivery;
  }

  /**
   * Queues an index job per push by digest (or of a cosign artifact), a `resolve-tag` job per
   * pushed tag — the digest pushed with it, if named, going along only as a hint, indexed by that
   * job — drops the finished push job of a deleted digest, and queues a look at each image whose
   * signatures came from a deleted artifact.
   */
  async #enqueue(delivery: NormalizedDelivery, log: IncomingDelivery['log']): Promise<string[]> {
    const { queue } = this.#deps;
    const jobIds: string[] = [];
    const rechecks = new Map<RegistryEvent, IndexManifestData[]>();
    for (const event of delivery.events) {
      if (event.kind === 'delete') {
        rechecks.set(event, await recheckJobs(this.#deps.db, event));
      }
    }
    try {
      const pushes = delivery.events.filter((e) => e.kind !== 'delete');
      if (pushes.length === delivery.events.length) {
        // Pushes only: their jobs, in one write shared with concurrent deliveries.
        jobIds.push(...(await this.#writer.queue(pushes.map((e) => pushJob(this.source.name, e)))));
        await this.#deps.confirmQueued?.();
        return jobIds;
      }
      // A delete drops finished jobs before what follows it is queued: one event after the other.
      for (const event of delivery.events) {
        if (event.kind !== 'delete') {
          const job = pushJob(this.source.name, event);
          jobIds.push(await addJob(queue, job.def, job.data));
        } else {
          if (event.digest !== null) {
            await forgetPushJob(queue, event.registry, event.repository, event.digest, this.#deps.log, (rechecks.get(event) ?? []).map((r) => r.digest));
          }
          for (const recheck of rechecks.get(event) ?? []) {
            jobIds.push(await addJob(queue, IndexManifestJob, recheck));
          }
        }
      }
      await this.#deps.confirmQueued?.();
    } catch (err) {
      log.warn({ err }, 'cannot queue webhook jobs; answering 503 so the registry redelivers');
      throw new WebhookError('UNAVAILABLE', 'the job queue is unavailable', { cause: err });
    }
    return jobIds;
  }

  /**
   * Records the delivery: alone (in one statement shared with concurrent deliveries) when it states
   * no fact, else with the deletes it states in one transaction.
   */
  async #record(incoming: IncomingDelivery, delivery: NormalizedDelivery, jobIds: readonly string[]): Promise<void> {
    const record: deliveries.DeliveryRecord = {
      source: this.source.name,
      remoteAddr: incoming.remoteAddr,
      contentType: incoming.headers['content-type'] ?? null,
      // The status the sender is answered: the delivery is accepted.
      statusCode: 202,
      result: summary(jobIds.length, delivery),
      eventCount: delivery.events.length + delivery.ignored.length + delivery.rejected.length,
      jobIds,
      payload: incoming.raw.toString('utf8'),
    };
    if (!delivery.events.some(statesFacts)) {
      await this.#writer.record(record);
      return;
    }
    await this.#deps.db.transaction().execute(async (trx) => {
      // Repository locks are taken in one global order, so concurrent deliveries cannot deadlock.
      const ordered = [...delivery.events].sort((a, b) => lockOrder(a).localeCompare(lockOrder(b)));
      for (const event of ordered) {
        await recordEventFacts(trx, event);
      }
      await deliveries.record(trx, record);
    });
  }
}

/**
 * A completed push job is kept a day so redeliveries collapse onto it; after a delete, the same
 * digest pushed again must be indexed again (and unmarked), so its finished job is dropped — and so
 * is that of the signature push it was, for each image a recheck is queued for.
 */
async function forgetPushJob(queue: Queue, registry: string, repository: string, digest: Digest, log: Logger, subjects: readonly Digest[] = []): Promise<void> {
  const eventAt = new Date().toISOString();
  await forgetFinishedJob(queue, IndexManifestJob.jobId({ registry, repository, digest, trigger: { kind: 'push' }, eventAt }), log);
  for (const subject of subjects) {
    // The tag is not part of the id: any signature push of this artifact for this image.
    await forgetFinishedJob(queue, IndexManifestJob.jobId({ registry, repository, digest: subject, trigger: { kind: 'signature', artifactDigest: digest, tag: '' }, eventAt }), log);
  }
}

/** How long a delete's intake waits for the job of the deleted artifact's push to end, if it is running. */
const FORGET_ACTIVE_WAIT_MS = 5_000;

/**
 * Drops the job of a deleted artifact's push, so that the same artifact pushed back is not
 * swallowed by it (job ids are deterministic). A job still running is waited for, up to
 * {@link FORGET_ACTIVE_WAIT_MS}: a worker logs and publishes before BullMQ marks the job completed,
 * so a delete right after a signature was seen found its job still active, left it, and a re-push
 * of the same signature then collapsed onto it and was never indexed. A job not started yet is
 * dropped too (the delete's recheck looks at the image).
 */
async function forgetFinishedJob(queue: Queue, jobId: string, log: Logger): Promise<void> {
  const deadline = Date.now() + FORGET_ACTIVE_WAIT_MS;
  let state = await queue.getJobState(jobId);
  while (state === 'active' && Date.now() < deadline) {
    await sleep(25);
    state = await queue.getJobState(jobId);
  }
  if (state === 'active') {
    log.warn({ jobId }, 'the push job of a deleted manifest is still running: the same artifact pushed back may not be indexed until the next crawl');
  } else if (state !== 'unknown') {
    await queue.remove(jobId).catch((err: unknown) => log.warn({ err, jobId }, 'could not drop the push job of a deleted manifest'));
  }
}

/**
 * A delete of a signature artifact — a `.sig`/`.att` manifest or a referrer, named by digest (the
 * ledger knows which images its signatures are on) or by its cosign tag — queues a `recheck` of
 * each such image: it is indexed again within seconds and what is gone is withdrawn. The finished
 * job of the artifact's push is dropped, so the same signature pushed back is indexed again.
 */
async function recheckJobs(db: Kysely<DB>, event: ManifestDeleteEvent): Promise<IndexManifestData[]> {
  const subjects = new Set<Digest>();
  const cosign = event.tag === null ? null : parseCosignTag(event.tag);
  if (cosign !== null && cosign.kind !== 'sbom') {
    subjects.add(cosign.subject);
  }
  if (event.digest !== null) {
    for (const subject of await signatures.subjectsOfSource(db, event.registry, event.repository, event.digest)) {
      subjects.add(subject);
    }
  }
  // A time the job contract refuses must not make the delivery fail (the registry would retry it forever).
  const eventAt = IndexManifestData.shape.eventAt.safeParse(event.at).success ? event.at : new Date().toISOString();
  return [...subjects].map((digest) =>
    IndexManifestData.parse({
      registry: event.registry,
      repository: event.repository,
      digest,
      trigger: { kind: 'recheck', cause: 'delete', artifactDigest: event.digest, eventId: event.eventId },
      eventAt,
    }),
  );
}

/**
 * A delete marks the manifest (`deleted_at`; nothing is erased). Pushes record nothing here: the
 * index job records the manifest, and a pushed tag is recorded only once the worker has seen it in
 * the registry.
 */
async function recordEventFacts(trx: Transaction<DB>, event: RegistryEvent): Promise<void> {
  if (!statesFacts(event)) {
    return;
  }
  const repositoryId = await repositories.lockAndEnsure(trx, event.registry, event.repository);
  await images.markDeleted(trx, repositoryId, event.digest, new Date(event.at));
}

/** Whether the ledger records something of `event` at intake: a delete of a digest does. */
function statesFacts(event: RegistryEvent): event is ManifestDeleteEvent & { digest: Digest } {
  return event.kind === 'delete' && event.digest !== null;
}

/**
 * The job of a push: a `resolve-tag` per pushed tag (the digest pushed with it, if named, only a
 * hint), else the index job of the digest (or of the cosign artifact's image).
 */
function pushJob(source: string, event: Exclude<RegistryEvent, ManifestDeleteEvent>): JobToAdd {
  const resolve = (e: { registry: string; repository: string; tag: string; eventId: string; at: string }, digest?: Digest): JobToAdd => ({
    def: ResolveTagJob,
    data: { registry: e.registry, repository: e.repository, tag: e.tag, source, eventId: e.eventId, eventAt: e.at, digest },
  });
  if (event.kind === 'tag-push') {
    return resolve(event);
  }
  if (event.tag !== null && parseCosignTag(event.tag) === null) {
    return resolve({ ...event, tag: event.tag }, event.digest);
  }
  return { def: IndexManifestJob, data: indexJobFor(event) };
}

function lockOrder(e: RegistryEvent): string {
  return `${e.registry}/${e.repository}`;
}

/**
 * An event time is the sender's word (distribution's `timestamp` is any string, Harbor's `occur_at`
 * any number): none may be later than the delivery's receipt.
 */
function clampEventTimes(d: NormalizedDelivery, receivedAt: Date): NormalizedDelivery {
  const latest = receivedAt.getTime();
  if (d.events.every((e) => Date.parse(e.at) <= latest)) {
    return d;
  }
  return { ...d, events: d.events.map((e) => (Date.parse(e.at) <= latest ? e : { ...e, at: receivedAt.toISOString() })) };
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
  const confirming = d.events.filter((e) => e.kind === 'push' && e.tag !== null && parseCosignTag(e.tag) === null).length;
  if (confirming > 0) {
    parts.push(`tags to confirm in the registry ${confirming}`);
  }
  const deletes = d.events.filter((e) => e.kind === 'delete').length;
  if (deletes > 0) {
    parts.push(`deletes ${deletes}`);
  }
  return parts.join(', ');
}
