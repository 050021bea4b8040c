import { readFixture } from './fixtures.ts';
import type { NormalizeContext } from '../../services/ingest/registries/delivery-builder.ts';

/** A normaliser context for unit tests: no registry override, a fixed body hash and receipt time. */
export function testContext(overrides: Partial<NormalizeContext> = {}): NormalizeContext {
  return { registry: null, deliveryId: null, bodyHash: 'b'.repeat(64), receivedAt: '2026-01-01T00:00:00.000Z', ...overrides };
}

/** The published Harbor CloudEvents push example with its `//` comment lines removed. */
export function harborCloudEventsPush(): string {
  return readFixture('webhooks/harbor/push-artifact.cloudevents.jsonc')
    .toString('utf8')
    .split('\n')
    .filter((l) => !l.trim().startsWith('//'))
    .join('\n');
}

/** A Pub/Sub push subscription body carrying `message` as base64 JSON (the GAR delivery shape). */
export function pubsubPush(message: object, messageId = '2070443601311540'): object {
  return {
    message: { data: Buffer.from(JSON.stringify(message)).toString('base64'), messageId, publishTime: '2021-02-26T19:13:55.749Z' },
    subscription: 'projects/my-project/subscriptions/signet',
  };
}
