import type { Digest } from './digest.ts';

/**
 * Where webhooks come from: each is `POST /webhooks/<source>` with its own authentication. Each
 * needs an adapter in the ingest role's `ADAPTERS` record (services/ingest/sources.ts), keyed by
 * source: a source added here alone does not compile.
 */
export const WEBHOOK_SOURCES = ['distribution', 'harbor', 'dockerhub', 'github', 'quay', 'acr', 'ecr', 'gar'] as const;
export type WebhookSource = (typeof WEBHOOK_SOURCES)[number];

/** A registry notification normalised across sources: what Signet acts on. */
export type RegistryEvent = ManifestPushEvent | TagPushEvent | ManifestDeleteEvent;

export interface ManifestPushEvent {
  readonly kind: 'push';
  readonly eventId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly mediaType: string;
  /** The tag pushed with the manifest, if it was pushed by tag. Display metadata only. */
  readonly tag: string | null;
  readonly at: string;
}

/**
 * A tag was pushed but the notification names no (valid) digest: Docker Hub, Quay, or a published
 * example with a placeholder digest. The worker resolves the tag to a digest before anything else.
 */
export interface TagPushEvent {
  readonly kind: 'tag-push';
  readonly eventId: string;
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  readonly at: string;
  /** Why the tag must be resolved (reported back with the delivery). */
  readonly reason: string;
}

export interface ManifestDeleteEvent {
  readonly kind: 'delete';
  readonly eventId: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest | null;
  readonly tag: string | null;
  readonly at: string;
}

/** An event in a delivery that Signet does not act on, and why (reported back and recorded). */
export interface SkippedEvent {
  readonly index: number;
  readonly eventId: string | null;
  readonly reason: string;
}

export interface NormalizedDelivery {
  readonly events: readonly RegistryEvent[];
  /** Not an image push or delete (blob pushes, pulls, deprecated schema1 manifests). */
  readonly ignored: readonly SkippedEvent[];
  /** Meant to be acted on but invalid (bad digest, repository or host); never queued. */
  readonly rejected: readonly SkippedEvent[];
}
