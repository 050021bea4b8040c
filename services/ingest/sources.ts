import type { IncomingHttpHeaders } from 'node:http';
import { type NormalizedDelivery, WEBHOOK_SOURCES, type WebhookSource } from '../common/domain/registry-event.ts';
import { normalizeAcr } from './registries/acr.ts';
import type { NormalizeContext } from './registries/delivery-builder.ts';
import { DISTRIBUTION_CONTENT_TYPES, normalizeDistribution } from './registries/distribution.ts';
import { normalizeDockerHub } from './registries/dockerhub.ts';
import { normalizeEcr } from './registries/ecr.ts';
import { normalizeGar } from './registries/gar.ts';
import { normalizeGitHub } from './registries/github.ts';
import { normalizeHarbor } from './registries/harbor.ts';
import { normalizeQuay } from './registries/quay.ts';

/**
 * How a source proves a delivery is its own:
 * - `header`: the `Authorization` header is the secret, bare or as `Bearer <secret>` (distribution
 *   and GitLab, Harbor's auth header, ACR custom headers, an EventBridge API destination's API key);
 * - `url-token`: `?token=<secret>` in the webhook URL, or the header, for senders that cannot set
 *   headers (Docker Hub, Quay, a Pub/Sub push subscription);
 * - `hmac-sha256`: GitHub's `X-Hub-Signature-256: sha256=<hex HMAC of the raw body>`.
 */
export type AuthScheme = 'header' | 'url-token' | 'hmac-sha256';

/** What Signet needs to take deliveries from one source. */
export interface Adapter {
  readonly contentTypes: readonly string[];
  readonly auth: AuthScheme;
  /** Header carrying the source's delivery id, the idempotency key when the body has none. */
  readonly deliveryIdHeader?: string;
  /**
   * Answer 400 when nothing in a delivery is usable and something was rejected. Not for
   * distribution, which retries a refused envelope forever and stops notifying behind it.
   */
  readonly refuseUnusable: boolean;
  normalize(body: unknown, ctx: NormalizeContext, headers: IncomingHttpHeaders): NormalizedDelivery;
}

/** A source with its name: `POST /webhooks/<name>`. */
export interface Source extends Adapter {
  readonly name: WebhookSource;
}

const JSON_TYPES = ['application/json'] as const;

/**
 * Every webhook source's adapter, keyed by source: a source in `WEBHOOK_SOURCES` without one here
 * (or one here that is not in the list) does not compile.
 */
export const ADAPTERS = {
  distribution: { contentTypes: DISTRIBUTION_CONTENT_TYPES, auth: 'header', refuseUnusable: false, normalize: normalizeDistribution },
  harbor: { contentTypes: [...JSON_TYPES, 'application/cloudevents+json'], auth: 'header', refuseUnusable: true, normalize: normalizeHarbor },
  dockerhub: { contentTypes: JSON_TYPES, auth: 'url-token', refuseUnusable: true, normalize: normalizeDockerHub },
  github: {
    contentTypes: JSON_TYPES,
    auth: 'hmac-sha256',
    deliveryIdHeader: 'x-github-delivery',
    refuseUnusable: true,
    normalize: (body, ctx, headers) => normalizeGitHub(body, ctx, headerValue(headers['x-github-event'])),
  },
  quay: { contentTypes: JSON_TYPES, auth: 'url-token', refuseUnusable: true, normalize: normalizeQuay },
  acr: { contentTypes: JSON_TYPES, auth: 'header', refuseUnusable: true, normalize: normalizeAcr },
  ecr: { contentTypes: JSON_TYPES, auth: 'header', refuseUnusable: true, normalize: normalizeEcr },
  gar: { contentTypes: JSON_TYPES, auth: 'url-token', refuseUnusable: true, normalize: normalizeGar },
} satisfies Record<WebhookSource, Adapter>;

/** Every source, in the order of `WEBHOOK_SOURCES`. */
export const SOURCES: readonly Source[] = WEBHOOK_SOURCES.map((name): Source => ({ name, ...ADAPTERS[name] }));

/** A header's value when it is sent once and is not empty. */
export function headerValue(h: string | string[] | undefined): string | null {
  return typeof h === 'string' && h.length > 0 ? h : null;
}
