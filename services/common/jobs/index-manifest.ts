import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isDigest, parseCosignTag } from '../domain/digest.ts';
import { defineJob } from './define-job.ts';

export const INDEX_QUEUE = 'index';

const digest = z.string().refine(isDigest, 'expected sha256:<64 hex>');

export const IndexManifestData = z.object({
  /** Registry host as clients address it, e.g. `registry.example.com` or `127.0.0.1:5000`. */
  registry: z.string().min(1).max(255),
  repository: z.string().min(1).max(255),
  digest,
  /**
   * What caused the job: a manifest push, a push of a cosign signature for `digest`, or a signature
   * artifact of `digest` seen gone (`recheck`: a delete notification for it, or a crawl that did not
   * find it) — looked for again, and withdrawn if it is no longer there.
   */
  trigger: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('push') }),
    z.object({ kind: z.literal('signature'), artifactDigest: digest, tag: z.string() }),
    z.object({
      kind: z.literal('recheck'),
      cause: z.enum(['delete', 'crawl']),
      /** The artifact seen gone; null when a delete named only its tag. */
      artifactDigest: digest.nullable(),
      /** The delete event's id, or the crawl pass's: each new observation is a new job, a redelivery is not. */
      eventId: z.string().min(1).max(256),
    }),
  ]),
  /** When the registry said the push happened (ISO 8601). */
  eventAt: z.iso.datetime({ offset: true }),
});
export type IndexManifestData = z.infer<typeof IndexManifestData>;

function hashId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 40);
}

/**
 * Index one pushed manifest: fetch it (and an index's children), discover and verify its cosign
 * signatures, write the ledger rows in one transaction.
 *
 * Job ids are deterministic: `push-<h(registry, repository, digest)>` so redelivered and duplicate
 * push events collapse, `sig-<h(…, signature manifest digest)>` for signature pushes, so a
 * signature pushed while the image's own job runs still triggers a fresh look, and
 * `recheck-<h(…, artifact digest, event id)>` for an artifact seen gone, so that neither collapses
 * onto a finished job of the push it undoes.
 */
export const IndexManifestJob = defineJob({
  name: 'index-manifest',
  queue: INDEX_QUEUE,
  schema: IndexManifestData,
  jobId: (d) =>
    d.trigger.kind === 'push'
      ? `push-${hashId(d.registry, d.repository, d.digest)}`
      : d.trigger.kind === 'signature'
        ? `sig-${hashId(d.registry, d.repository, d.digest, d.trigger.artifactDigest)}`
        : `recheck-${hashId(d.registry, d.repository, d.digest, d.trigger.artifactDigest ?? '', d.trigger.cause, d.trigger.eventId)}`,
  options: {
    attempts: 12,
    backoff: { type: 'exponential', delay: 2_000 },
    // Completed jobs are kept a day so that redeliveries within it collapse onto them by id.
    removeOnComplete: { age: 24 * 3600, count: 100_000 },
    // Failures are kept for inspection.
    removeOnFail: { age: 30 * 24 * 3600 },
  },
});

export const LearnImageData = z.object({
  registry: z.string().min(1).max(255),
  repository: z.string().min(1).max(255),
  /** A tag or a digest, as an admission request named it. */
  reference: z.string().min(1).max(140),
});
export type LearnImageData = z.infer<typeof LearnImageData>;

/**
 * Index an image Signet has never heard of because an admission point asked about it (registries
 * without webhooks, public images). Resolves the reference in the registry, records the tag, then
 * indexes like a push. Only enqueued for registries operators allow (SIGNET_LEARN_REGISTRIES).
 */
export const LearnImageJob = defineJob({
  name: 'learn-image',
  queue: INDEX_QUEUE,
  schema: LearnImageData,
  jobId: (d) => `learn-${hashId(d.registry, d.repository, d.reference)}`,
  // Kept a day: the same unknown reference asked again does not hammer the registry.
  options: { ...IndexManifestJob.options, attempts: 3 },
});

export const ResolveTagData = z.object({
  registry: z.string().min(1).max(255),
  repository: z.string().min(1).max(255),
  tag: z.string().min(1).max(128),
  /** Which webhook source said so, and its event or delivery id: redeliveries collapse on it. */
  source: z.string().min(1).max(32),
  eventId: z.string().min(1).max(256),
  /** When the registry said the push happened (ISO 8601, never after the delivery's receipt). */
  eventAt: z.iso.datetime({ offset: true }),
  /**
   * The digest the webhook said it pushed under the tag: a hint the job confirms, never recorded as
   * the tag's target. While the registry disagrees (distribution notifies before it links the
   * tag) the job checks again a few times. Absent: the notification named no digest.
   */
  digest: digest.optional(),
});
export type ResolveTagData = z.infer<typeof ResolveTagData>;

/**
 * A tag pushed, as a webhook says: resolve the tag in the registry, record what the registry
 * answers as the tag move, then enqueue the ordinary index job (`push-<h>` or `sig-<h>`), so a
 * digest a webhook, a backfill and a resolved tag all name is indexed once. Every webhook tag goes
 * through here, whether its notification names a digest (a hint: see `digest`) or not (Docker Hub,
 * Quay, placeholder digests): no sender's word moves a tag.
 *
 * The id includes the source's event id: a redelivery collapses onto the job, a new push of the same
 * tag (new event id) resolves again. Completed jobs are kept only ten minutes: sources without event
 * ids (Quay) derive one from the body, and an identical later notification must not be swallowed.
 */
export const ResolveTagJob = defineJob({
  name: 'resolve-tag',
  queue: INDEX_QUEUE,
  schema: ResolveTagData,
  jobId: (d) => `tag-${hashId(d.source, d.registry, d.repository, d.tag, d.eventId)}`,
  options: { ...IndexManifestJob.options, removeOnComplete: { age: 600, count: 100_000 } },
});

/**
 * The index job for a manifest pushed under `tag` (or by digest): a cosign `.sig`/`.att` artifact or
 * a referrers-tag index (`sha256-<hex>`) becomes a signature trigger for the image it is about,
 * anything else a push of itself.
 */
export function indexJobFor(e: { registry: string; repository: string; digest: string; tag: string | null; at: string }): IndexManifestData {
  const cosign = e.tag === null ? null : parseCosignTag(e.tag);
  const signature = cosign?.kind === 'sig' || cosign?.kind === 'att' || cosign?.kind === 'referrers' ? cosign : null;
  return IndexManifestData.parse({
    registry: e.registry,
    repository: e.repository,
    digest: signature === null ? e.digest : signature.subject,
    trigger: signature === null ? { kind: 'push' } : { kind: 'signature', artifactDigest: e.digest, tag: e.tag ?? '' },
    eventAt: e.at,
  });
}
