import { z } from 'zod';
import { isRegistryHost } from '../../common/domain/image-ref.ts';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { WebhookError } from '../../common/errors.ts';
import { DeliveryBuilder, describeIssues, type NormalizeContext, type PushOptions } from './delivery-builder.ts';

/** Content types CNCF distribution (v2: `events.v1+json`, v3: `events.v2+json`) and GitLab send. */
export const DISTRIBUTION_CONTENT_TYPES = [
  'application/vnd.docker.distribution.events.v1+json',
  'application/vnd.docker.distribution.events.v2+json',
  'application/json',
] as const;

/** Manifest media types whose pushes are indexed. */
export const INDEXED_MANIFEST_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

const MAX_EVENTS = 1_000;

export const DistributionEvent = z.looseObject({
  id: z.string().min(1).max(256),
  timestamp: z.string().max(64),
  action: z.string().max(32),
  target: z.looseObject({
    mediaType: z.string().max(256).optional(),
    digest: z.string().max(256).optional(),
    repository: z.string().max(512).optional(),
    url: z.string().max(4096).optional(),
    tag: z.string().max(256).optional(),
  }),
  request: z.looseObject({ host: z.string().max(512).optional() }).optional(),
});

export type DistributionEvent = z.infer<typeof DistributionEvent>;

const Envelope = z.looseObject({
  events: z.array(DistributionEvent).min(1, 'the envelope holds no events').max(MAX_EVENTS, `more than ${MAX_EVENTS} events`),
});

/**
 * Normalises a CNCF distribution (or GitLab) notification envelope. A body that is not an envelope
 * throws {@link WebhookError} `MALFORMED` (HTTP 400) naming the problem. Within a valid envelope,
 * events Signet does not act on are `ignored`, and image events with invalid fields are `rejected`:
 * they do not fail the delivery, because distribution retries a failed envelope forever and would
 * stop notifying about everything after it.
 *
 * Quirks handled (see test/fixtures/webhooks/PROVENANCE.md): the manifest's `target.digest` is
 * authoritative even when `target.url` names another digest; schema1 manifests are ignored; blob
 * events with invalid digests are ignored, not rejected.
 */
export function normalizeDistribution(body: unknown, ctx?: NormalizeContext): NormalizedDelivery {
  const parsed = Envelope.safeParse(body);
  if (!parsed.success) {
    throw new WebhookError('MALFORMED', `not a distribution notification envelope: ${describeIssues(parsed.error)}`);
  }
  const out = new DeliveryBuilder();
  parsed.data.events.forEach((event, index) => addDistributionEvent(out, index, event, ctx, { withoutDigest: 'reject' }));
  return out.build();
}

/** One distribution-shaped event (distribution, GitLab, Azure Container Registry) into `out`. */
export function addDistributionEvent(out: DeliveryBuilder, index: number, event: DistributionEvent, ctx: NormalizeContext | undefined, opts: PushOptions): void {
  const { target } = event;
  const mediaType = target.mediaType ?? '';
  if (event.action !== 'push' && event.action !== 'delete') {
    out.ignore(index, event.id, `action "${event.action}" is not a push or delete`);
    return;
  }
  if (event.action === 'push' && !INDEXED_MANIFEST_TYPES.has(mediaType)) {
    out.ignore(index, event.id, SCHEMA1_TYPES.has(mediaType) ? 'schema1 manifests (deprecated, unsignable by cosign) are not indexed' : `not a manifest (${mediaType || 'no media type'})`);
    return;
  }
  const facts = {
    eventId: event.id,
    registry: ctx?.registry ?? registryHost(event.request?.host, target.url),
    repository: target.repository,
    digest: target.digest,
    tag: target.tag,
    mediaType,
    at: event.timestamp,
  };
  if (event.action === 'push') {
    out.push(index, facts, opts);
  } else {
    out.delete(index, facts);
  }
}

function registryHost(requestHost: string | undefined, url: string | undefined): string | null {
  const candidates = [requestHost];
  if (url !== undefined) {
    try {
      candidates.push(new URL(url).host);
    } catch {
      // an unparsable url just isn't a candidate
    }
  }
  for (const c of candidates) {
    const host = c?.toLowerCase();
    if (host !== undefined && isRegistryHost(host)) {
      return host;
    }
  }
  return null;
}
