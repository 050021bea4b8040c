import { z } from 'zod';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { DeliveryBuilder, fromEpochSeconds, parseBody, type NormalizeContext } from './delivery-builder.ts';

const Body = z.looseObject({
  push_data: z.looseObject({ pushed_at: z.number(), tag: z.string().max(256), pusher: z.string().max(256).optional() }),
  repository: z.looseObject({ repo_name: z.string().max(255) }),
});

/**
 * Normalises a Docker Hub push webhook. It carries no digest (`push_data.tag` only), so the push is
 * a tag push the worker resolves. Its event id is repository, tag and `pushed_at`: a redelivery
 * collapses, a later push of the same tag does not.
 */
export function normalizeDockerHub(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const doc = parseBody(Body, body, 'a Docker Hub webhook');
  const out = new DeliveryBuilder();
  const { repo_name: repository } = doc.repository;
  out.push(
    0,
    {
      eventId: `${repository}:${doc.push_data.tag}@${doc.push_data.pushed_at}`,
      registry: ctx.registry ?? 'docker.io',
      repository,
      tag: doc.push_data.tag,
      at: fromEpochSeconds(doc.push_data.pushed_at) ?? ctx.receivedAt,
    },
    { withoutDigest: 'resolve-tag' },
  );
  return out.build();
}
