import type { Digest } from './digest.ts';

/** A registry notification normalised across sources: what Signet acts on. */
export type RegistryEvent = ManifestPushEvent | ManifestDeleteEvent;

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
