import { z } from 'zod';
import { ImageReferenceError, parseImageReference, type ImageReference } from '../../common/domain/image-ref.ts';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { WebhookError } from '../../common/errors.ts';
import { DeliveryBuilder, parseBody, type NormalizeContext } from './delivery-builder.ts';

/** A Pub/Sub push subscription's request body. */
const PushBody = z.looseObject({
  message: z.looseObject({
    data: z.base64().max(64 * 1024),
    messageId: z.string().min(1).max(256).optional(),
    message_id: z.string().min(1).max(256).optional(),
    publishTime: z.string().max(64).optional(),
    publish_time: z.string().max(64).optional(),
  }),
  subscription: z.string().max(1024).optional(),
});

/** The Artifact Registry (and Container Registry) `gcr` topic's message. */
const Message = z.looseObject({
  action: z.string().max(32),
  digest: z.string().max(2048).optional(),
  tag: z.string().max(2048).optional(),
});

/**
 * Normalises a Google Artifact Registry notification delivered by a Pub/Sub push subscription:
 * base64 `message.data` holds `{action, digest, tag}` with full image names
 * (`us-docker.pkg.dev/p/r/img@sha256:…`, `…/img:tag`). `INSERT` with a digest is a push (with its
 * tag, if any), `INSERT` with only a tag a tag push to resolve, `DELETE` a delete. The Pub/Sub
 * `messageId` is the event id: Pub/Sub redelivers with the same one.
 */
export function normalizeGar(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const push = parseBody(PushBody, body, 'a Pub/Sub push message');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(push.message.data, 'base64').toString('utf8'));
  } catch (err) {
    throw new WebhookError('MALFORMED', `message.data is not base64 JSON: ${(err as Error).message}`);
  }
  const msg = parseBody(Message, decoded, 'an Artifact Registry notification in message.data');
  const eventId = push.message.messageId ?? push.message.message_id ?? ctx.bodyHash;
  const at = push.message.publishTime ?? push.message.publish_time ?? ctx.receivedAt;
  const out = new DeliveryBuilder();
  let digestRef: ImageReference | null;
  let tagRef: ImageReference | null;
  try {
    digestRef = msg.digest === undefined || msg.digest === '' ? null : parseImageReference(msg.digest);
    tagRef = msg.tag === undefined || msg.tag === '' ? null : parseImageReference(msg.tag);
  } catch (err) {
    if (!(err instanceof ImageReferenceError)) {
      throw err;
    }
    out.reject(0, eventId, err.message);
    return out.build();
  }
  const image = digestRef ?? tagRef;
  if (msg.action !== 'INSERT' && msg.action !== 'DELETE') {
    out.ignore(0, eventId, `action "${msg.action}" is not INSERT or DELETE`);
  } else if (image === null) {
    out.reject(0, eventId, 'the message names neither a digest nor a tag');
  } else {
    const facts = {
      eventId,
      registry: ctx.registry ?? image.registry,
      repository: image.repository,
      digest: digestRef?.digest,
      tag: tagRef?.tag,
      at,
    };
    if (msg.action === 'INSERT') {
      out.push(0, facts, { withoutDigest: 'resolve-tag' });
    } else {
      out.delete(0, facts);
    }
  }
  return out.build();
}
