import { z } from 'zod';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { DeliveryBuilder, parseBody, type NormalizeContext } from './delivery-builder.ts';
import { addDistributionEvent, DistributionEvent } from './distribution.ts';

/** An Event Grid event carrying an ACR event in `data` (`ImagePushed`, `ImageDeleted`, …). */
const EventGridEvent = z.looseObject({ id: z.string().max(256), eventType: z.string().max(128), data: z.unknown() });

const Body = z.union([DistributionEvent, z.array(EventGridEvent).min(1).max(1_000)]);

/**
 * Normalises an Azure Container Registry webhook (`push` / `delete`: one distribution-shaped
 * event) or an Event Grid delivery of `ImagePushed` / `ImageDeleted` events. The registry is
 * `request.host` unless the secret names one. A push whose digest is invalid (the 2023 docs
 * redact it to `sha256:xxxx…`) is resolved by its tag; such a delete is rejected.
 */
export function normalizeAcr(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const doc = parseBody(Body, body, 'an Azure Container Registry webhook or Event Grid delivery');
  const out = new DeliveryBuilder();
  const events = Array.isArray(doc) ? doc : [{ id: doc.id, eventType: null, data: doc }];
  events.forEach((e, index) => {
    if (e.eventType !== null && e.eventType !== 'ImagePushed' && e.eventType !== 'ImageDeleted') {
      out.ignore(index, e.id, `Event Grid event type "${e.eventType}" is not ImagePushed or ImageDeleted`);
      return;
    }
    const parsed = DistributionEvent.safeParse(e.data);
    if (!parsed.success) {
      out.reject(index, e.id, 'the Event Grid data is not an ACR event');
      return;
    }
    addDistributionEvent(out, index, parsed.data, ctx, { withoutDigest: 'resolve-tag' });
  });
  return out.build();
}
