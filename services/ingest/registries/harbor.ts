import { z } from 'zod';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { DeliveryBuilder, fromEpochSeconds, parseBody, splitImageUrl, type NormalizeContext } from './delivery-builder.ts';

const MAX_RESOURCES = 1_000;

const EventData = z.looseObject({
  resources: z
    .array(
      z.looseObject({
        digest: z.string().max(256).optional(),
        tag: z.string().max(256).optional(),
        resource_url: z.string().max(4096).optional(),
      }),
    )
    .max(MAX_RESOURCES),
  repository: z.looseObject({ repo_full_name: z.string().max(512).optional(), name: z.string().max(255).optional(), namespace: z.string().max(255).optional() }),
});

/** Harbor's own ("Default") payload format. */
const DefaultFormat = z.looseObject({
  type: z.string().max(64),
  occur_at: z.number(),
  event_data: EventData,
});

/** Harbor's CloudEvents 1.0 format (structured mode). */
const CloudEventsFormat = z.looseObject({
  specversion: z.string().max(16),
  id: z.string().min(1).max(256),
  type: z.string().max(128),
  time: z.string().max(64),
  data: EventData,
});

const Body = z.union([
  CloudEventsFormat.transform((e) => ({ id: e.id, type: e.type, at: e.time, data: e.data })),
  DefaultFormat.transform((e) => ({ id: null, type: e.type, at: e.occur_at, data: e.event_data })),
]);

const PUSH = new Set(['PUSH_ARTIFACT', 'harbor.artifact.pushed']);
const DELETE = new Set(['DELETE_ARTIFACT', 'harbor.artifact.deleted']);

/**
 * Normalises a Harbor webhook, Default or CloudEvents format: `PUSH_ARTIFACT` /
 * `harbor.artifact.pushed` and `DELETE_ARTIFACT` / `harbor.artifact.deleted`, one event per
 * resource; every other type (pulls, scans, quotas, replication) is ignored. The registry is the
 * host of `resource_url` (Harbor's external URL) unless the secret names one. Harbor's `tag` equals
 * the digest for a push by digest: that is no tag.
 *
 * Harbor has no event id in its Default format; the body hash stands in for it. The published
 * CloudEvents example contains `//` comments and is not JSON: Harbor itself sends plain JSON.
 */
export function normalizeHarbor(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const doc = parseBody(Body, body, 'a Harbor webhook (Default or CloudEvents format)');
  const { type, data } = doc;
  const id = doc.id ?? ctx.bodyHash;
  const at = typeof doc.at === 'string' ? doc.at : (fromEpochSeconds(doc.at) ?? ctx.receivedAt);
  const out = new DeliveryBuilder();
  data.resources.forEach((r, index) => {
    const eventId = `${id}/${index}`;
    if (!PUSH.has(type) && !DELETE.has(type)) {
      out.ignore(index, eventId, `event type "${type}" is not a push or delete`);
      return;
    }
    const facts = {
      eventId,
      registry: ctx.registry ?? splitImageUrl(r.resource_url)?.host,
      repository: data.repository.repo_full_name ?? splitImageUrl(r.resource_url)?.repository,
      digest: r.digest,
      tag: r.tag,
      at,
    };
    if (PUSH.has(type)) {
      out.push(index, facts, { withoutDigest: 'resolve-tag' });
    } else {
      out.delete(index, facts);
    }
  });
  return out.build();
}
