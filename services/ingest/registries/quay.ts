import { z } from 'zod';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { DeliveryBuilder, parseBody, splitImageUrl, type NormalizeContext } from './delivery-builder.ts';

const Body = z.looseObject({
  repository: z.string().max(255),
  docker_url: z.string().max(1024),
  updated_tags: z.array(z.string().max(256)).max(1_000),
});

/**
 * Normalises a Quay "Repository Push" (`repo_push`) notification: one tag push per entry of
 * `updated_tags`, resolved by the worker (Quay sends no digests). The registry is the host of
 * `docker_url`. Quay sends neither an event id nor a time: the body hash and the receipt time stand
 * in, so a redelivery of the same body collapses (within the resolve job's ten-minute window).
 */
export function normalizeQuay(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const doc = parseBody(Body, body, 'a Quay repo_push notification');
  const out = new DeliveryBuilder();
  const url = splitImageUrl(doc.docker_url);
  if (doc.updated_tags.length === 0) {
    out.ignore(0, ctx.bodyHash, 'no updated_tags');
  }
  doc.updated_tags.forEach((tag, index) => {
    out.push(
      index,
      { eventId: `${ctx.bodyHash}/${index}`, registry: ctx.registry ?? url?.host, repository: url?.repository ?? doc.repository, tag, at: ctx.receivedAt },
      { withoutDigest: 'resolve-tag' },
    );
  });
  return out.build();
}
