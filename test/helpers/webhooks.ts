import { createHmac, randomUUID } from 'node:crypto';
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

/** One image push as a sender reports it: where, what, under which tag, and when. */
export interface PushReport {
  /** The registry host the payload names (`127.0.0.1:5000`). */
  readonly host: string;
  readonly repository: string;
  readonly digest: string;
  readonly tag: string;
  /** When the sender says the push happened (default: now). */
  readonly at?: Date;
  /** The sender's event id (default: a random one). */
  readonly id?: string;
}

const eventId = (r: PushReport) => r.id ?? `evt-${randomUUID()}`;

/** A CNCF distribution notification envelope holding one manifest push, as `registry:2` sends it. */
export function distributionPush(r: PushReport): string {
  return JSON.stringify({
    events: [
      {
        id: eventId(r),
        timestamp: (r.at ?? new Date()).toISOString(),
        action: 'push',
        target: {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: r.digest,
          repository: r.repository,
          url: `http://${r.host}/v2/${r.repository}/manifests/${r.digest}`,
          tag: r.tag,
        },
        request: { id: randomUUID(), host: r.host, method: 'PUT' },
      },
    ],
  });
}

/** A Harbor `PUSH_ARTIFACT` in Harbor's Default format (`occur_at` in epoch seconds). */
export function harborPush(r: PushReport): string {
  return JSON.stringify({
    type: 'PUSH_ARTIFACT',
    occur_at: Math.floor((r.at ?? new Date()).getTime() / 1000),
    operator: 'admin',
    event_data: {
      resources: [{ digest: r.digest, tag: r.tag, resource_url: `${r.host}/${r.repository}:${r.tag}` }],
      repository: { repo_full_name: r.repository, name: r.repository.split('/').at(-1), namespace: r.repository.split('/')[0], repo_type: 'private' },
    },
  });
}

/** A GitHub `package` event (`published`, a container package) and the headers that sign it under `secret`. */
export function githubPackagePush(r: PushReport, secret: string): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify({
    action: 'published',
    package: {
      name: r.repository.split('/').at(-1),
      ecosystem: 'CONTAINER',
      package_type: 'CONTAINER',
      package_version: {
        name: r.digest,
        updated_at: (r.at ?? new Date()).toISOString(),
        package_url: `${r.host}/${r.repository}:${r.tag}`,
        container_metadata: { tag: { name: r.tag, digest: r.digest }, manifest: { digest: r.digest } },
      },
    },
  });
  return {
    body,
    headers: {
      authorization: '',
      'x-github-event': 'package',
      'x-github-delivery': eventId(r),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
  };
}

/** An Artifact Registry INSERT of `host/repository:tag` → digest, as a Pub/Sub push subscription delivers it. */
export function garPush(r: PushReport): string {
  const message = pubsubPush({ action: 'INSERT', digest: `${r.host}/${r.repository}@${r.digest}`, tag: `${r.host}/${r.repository}:${r.tag}` }, eventId(r)) as {
    message: { publishTime: string };
  };
  message.message.publishTime = (r.at ?? new Date()).toISOString();
  return JSON.stringify(message);
}
