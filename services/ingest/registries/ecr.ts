import { z } from 'zod';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { DeliveryBuilder, parseBody, type NormalizeContext } from './delivery-builder.ts';

const Body = z.looseObject({
  id: z.string().min(1).max(256),
  'detail-type': z.string().max(128),
  source: z.string().max(128),
  account: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account id'),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region'),
  time: z.string().max(64),
  detail: z.looseObject({
    result: z.string().max(32).optional(),
    'repository-name': z.string().max(256),
    'image-digest': z.string().max(256).optional(),
    'image-tag': z.string().max(256).optional(),
    'action-type': z.string().max(32),
  }),
});

/**
 * Normalises an Amazon EventBridge `ECR Image Action` event (as an API destination delivers it):
 * `PUSH` and `DELETE` with `result: SUCCESS`. The registry is
 * `<account>.dkr.ecr.<region>.amazonaws.com` unless the secret names one. A push whose digest is
 * invalid (the published example's is 60 hex characters) is resolved by its tag; such a delete is
 * rejected, because Signet never guesses which manifest was deleted.
 */
export function normalizeEcr(body: unknown, ctx: NormalizeContext): NormalizedDelivery {
  const doc = parseBody(Body, body, 'an EventBridge ECR Image Action event');
  const out = new DeliveryBuilder();
  const { detail } = doc;
  const action = detail['action-type'];
  if (doc['detail-type'] !== 'ECR Image Action' || doc.source !== 'aws.ecr') {
    out.ignore(0, doc.id, `event "${doc['detail-type']}" from ${doc.source} is not an ECR Image Action`);
  } else if (detail.result !== undefined && detail.result !== 'SUCCESS') {
    out.ignore(0, doc.id, `the ${action} did not succeed (${detail.result})`);
  } else if (action !== 'PUSH' && action !== 'DELETE') {
    out.ignore(0, doc.id, `action "${action}" is not a push or delete`);
  } else {
    const facts = {
      eventId: doc.id,
      registry: ctx.registry ?? `${doc.account}.dkr.ecr.${doc.region}.amazonaws.com`,
      repository: detail['repository-name'],
      digest: detail['image-digest'],
      tag: detail['image-tag'],
      at: doc.time,
    };
    if (action === 'PUSH') {
      out.push(0, facts, { withoutDigest: 'resolve-tag' });
    } else {
      out.delete(0, facts);
    }
  }
  return out.build();
}
