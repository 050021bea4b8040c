import { z } from 'zod';
import { isDigest } from '../../common/domain/digest.ts';
import { isRegistryHost, isRepositoryName, isTag } from '../../common/domain/image-ref.ts';
import type { NormalizedDelivery, RegistryEvent, SkippedEvent } from '../../common/domain/registry-event.ts';
import { WebhookError } from '../../common/errors.ts';

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

const Event = z.looseObject({
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

const Envelope = z.looseObject({
  events: z.array(Event).min(1, 'the envelope holds no events').max(MAX_EVENTS, `more than ${MAX_EVENTS} events`),
});

/**
 * Normalises a CNCF distribution notification envelope. A body that is not an envelope throws
 * {@link WebhookError} `MALFORMED` (HTTP 400) naming the problem. Within a valid envelope, events
 * Signet does not act on are `ignored`, and image events with invalid fields are `rejected`: they
 * do not fail the delivery, because distribution retries a failed envelope forever and would stop
 * notifying about everything after it.
 *
 * Quirks handled (see shared/fixtures/webhooks/PROVENANCE.md): the manifest's `target.digest` is
 * authoritative even when `target.url` names another digest; schema1 manifests are ignored; blob
 * events with invalid digests are ignored, not rejected.
 */
export function normalizeDistribution(body: unknown): NormalizedDelivery {
  const parsed = Envelope.safeParse(body);
  if (!parsed.success) {
    throw new WebhookError('MALFORMED', `not a distribution notification envelope: ${describeIssues(parsed.error)}`);
  }
  const events: RegistryEvent[] = [];
  const ignored: SkippedEvent[] = [];
  const rejected: SkippedEvent[] = [];
  parsed.data.events.forEach((event, index) => {
    const skip = (list: SkippedEvent[], reason: string) => list.push({ index, eventId: event.id, reason });
    const { target } = event;
    const mediaType = target.mediaType ?? '';
    if (event.action !== 'push' && event.action !== 'delete') {
      skip(ignored, `action "${event.action}" is not a push or delete`);
      return;
    }
    if (event.action === 'push' && !INDEXED_MANIFEST_TYPES.has(mediaType)) {
      skip(ignored, SCHEMA1_TYPES.has(mediaType) ? 'schema1 manifests (deprecated, unsignable by cosign) are not indexed' : `not a manifest (${mediaType || 'no media type'})`);
      return;
    }
    const registry = registryHost(event.request?.host, target.url);
    const problems: string[] = [];
    if (registry === null) {
      problems.push('no valid registry host in request.host or target.url');
    }
    if (target.repository === undefined || !isRepositoryName(target.repository)) {
      problems.push(`target.repository ${JSON.stringify(target.repository ?? null)} is not a repository name`);
    }
    const digest = target.digest;
    if (digest !== undefined && !isDigest(digest)) {
      problems.push(`target.digest ${JSON.stringify(digest.slice(0, 100))} is not a sha256 digest`);
    }
    if (event.action === 'push' && digest === undefined) {
      problems.push('target.digest is missing');
    }
    const tag = target.tag === undefined || target.tag === '' ? null : target.tag;
    if (tag !== null && !isTag(tag)) {
      problems.push(`target.tag ${JSON.stringify(tag.slice(0, 140))} is not a tag`);
    }
    if (event.action === 'delete' && digest === undefined && tag === null) {
      problems.push('a delete event needs target.digest or target.tag');
    }
    const at = new Date(event.timestamp);
    if (Number.isNaN(at.getTime())) {
      problems.push(`timestamp ${JSON.stringify(event.timestamp)} is not a date`);
    }
    if (problems.length > 0 || registry === null || target.repository === undefined) {
      skip(rejected, problems.join('; '));
      return;
    }
    const common = {
      eventId: event.id,
      registry,
      repository: target.repository,
      tag,
      at: at.toISOString(),
    };
    if (event.action === 'push' && isDigest(digest)) {
      events.push({ kind: 'push', ...common, digest, mediaType });
    } else if (event.action === 'delete') {
      events.push({ kind: 'delete', ...common, digest: isDigest(digest) ? digest : null });
    }
  });
  return { events, ignored, rejected };
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

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length === 0 ? '(body)' : i.path.join('.')}: ${i.message}`)
    .join('; ');
}
