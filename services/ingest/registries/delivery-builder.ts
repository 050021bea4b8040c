import type { z } from 'zod';
import { isDigest } from '../../common/domain/digest.ts';
import { isRegistryHost, isRepositoryName, isTag } from '../../common/domain/image-ref.ts';
import type { NormalizedDelivery, RegistryEvent, SkippedEvent } from '../../common/domain/registry-event.ts';
import { WebhookError } from '../../common/errors.ts';

/** What a normaliser knows besides the body. */
export interface NormalizeContext {
  /**
   * The registry the authenticating secret belongs to (a registries-file entry with a host): it
   * names the registry, whatever host the payload claims. Null: the payload's host is used — and
   * the intake refuses the delivery if that host is a registry bound to a secret.
   */
  readonly registry: string | null;
  /** The source's delivery id from a header (`X-GitHub-Delivery`), when it sends one. */
  readonly deliveryId: string | null;
  /** Hex sha256 of the raw body: the event id of last resort (sources that send none). */
  readonly bodyHash: string;
  /** When Signet received the delivery (ISO 8601): the event time of sources that send none. */
  readonly receivedAt: string;
}

/** A normaliser: body → events. Throws {@link WebhookError} `MALFORMED` for a body of the wrong shape. */
export type Normalizer = (body: unknown, ctx: NormalizeContext) => NormalizedDelivery;

export interface ImageFacts {
  readonly eventId: string;
  readonly registry: string | null | undefined;
  readonly repository: string | null | undefined;
  readonly digest?: string | null | undefined;
  readonly tag?: string | null | undefined;
  readonly mediaType?: string | undefined;
  /** ISO 8601 string, or a Date. */
  readonly at: string | Date;
}

export interface PushOptions {
  /**
   * What to do with a push whose digest is missing or invalid (placeholder digests in published
   * examples, Docker Hub and Quay which send none): resolve its tag in the worker, or reject it.
   */
  readonly withoutDigest: 'resolve-tag' | 'reject';
}

/**
 * Collects one delivery's events. Image events with invalid fields are `rejected` (never queued);
 * events Signet does not act on are `ignored`. Registry hosts are lower-cased; a tag that is really
 * a digest (Harbor pushes by digest) counts as no tag.
 */
export class DeliveryBuilder {
  private readonly events: RegistryEvent[] = [];
  private readonly ignored: SkippedEvent[] = [];
  private readonly rejected: SkippedEvent[] = [];

  ignore(index: number, eventId: string | null, reason: string): void {
    this.ignored.push({ index, eventId, reason });
  }

  reject(index: number, eventId: string | null, reason: string): void {
    this.rejected.push({ index, eventId, reason });
  }

  push(index: number, e: ImageFacts, opts: PushOptions): void {
    const checked = this.check(index, e);
    if (checked === null) {
      return;
    }
    const { registry, repository, tag, at } = checked;
    const common = { eventId: e.eventId, registry, repository, at };
    if (isDigest(e.digest)) {
      this.events.push({ kind: 'push', ...common, digest: e.digest, mediaType: e.mediaType ?? '', tag });
      return;
    }
    const why = e.digest === undefined || e.digest === null || e.digest === '' ? 'no digest' : `digest ${quote(e.digest)} is not a sha256 digest`;
    if (opts.withoutDigest === 'reject' || tag === null) {
      this.reject(index, e.eventId, tag === null ? `${why} and no tag to resolve` : why);
      return;
    }
    this.events.push({ kind: 'tag-push', ...common, tag, reason: `${why}: the tag is resolved in the registry` });
  }

  /** A delete needs a valid digest to mark a manifest; a tag-only delete is recorded as nothing. */
  delete(index: number, e: ImageFacts): void {
    const checked = this.check(index, e);
    if (checked === null) {
      return;
    }
    if (e.digest !== undefined && e.digest !== null && !isDigest(e.digest)) {
      this.reject(index, e.eventId, `digest ${quote(e.digest)} is not a sha256 digest: Signet never guesses which manifest was deleted`);
      return;
    }
    if (!isDigest(e.digest) && checked.tag === null) {
      this.reject(index, e.eventId, 'a delete event needs a digest or a tag');
      return;
    }
    const { registry, repository, tag, at } = checked;
    this.events.push({ kind: 'delete', eventId: e.eventId, registry, repository, tag, at, digest: isDigest(e.digest) ? e.digest : null });
  }

  build(): NormalizedDelivery {
    return { events: this.events, ignored: this.ignored, rejected: this.rejected };
  }

  private check(index: number, e: ImageFacts): { registry: string; repository: string; tag: string | null; at: string } | null {
    const problems: string[] = [];
    const registry = e.registry?.toLowerCase() ?? null;
    if (registry === null || !isRegistryHost(registry)) {
      problems.push(`registry ${quote(e.registry ?? null)} is not a registry host`);
    }
    if (e.repository === undefined || e.repository === null || !isRepositoryName(e.repository)) {
      problems.push(`repository ${quote(e.repository ?? null)} is not a repository name`);
    }
    const tag = e.tag === undefined || e.tag === null || e.tag === '' || e.tag.startsWith('sha256:') ? null : e.tag;
    if (tag !== null && !isTag(tag)) {
      problems.push(`tag ${quote(tag)} is not a tag`);
    }
    const at = e.at instanceof Date ? e.at : new Date(e.at);
    if (Number.isNaN(at.getTime())) {
      problems.push(`time ${quote(String(e.at))} is not a date`);
    }
    if (problems.length > 0 || registry === null || e.repository === undefined || e.repository === null) {
      this.reject(index, e.eventId, problems.join('; '));
      return null;
    }
    return { registry, repository: e.repository, tag, at: at.toISOString() };
  }
}

function quote(s: string | null): string {
  return JSON.stringify(s === null ? null : s.slice(0, 100));
}

/** Parses `body` with `schema`, or throws `MALFORMED` naming the first problems and what was expected. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new WebhookError('MALFORMED', `not ${what}: ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length === 0 ? '(body)' : i.path.join('.')}: ${i.message}`)
    .join('; ');
}

/** `host/path/name[:tag|@digest]` (as Harbor, Quay, GitHub and GAR print them) → host and repository. */
export function splitImageUrl(url: string | undefined): { host: string; repository: string } | null {
  if (url === undefined) {
    return null;
  }
  const bare = url.replace(/^[a-z]+:\/\//i, '').replace(/@.*$/, '');
  const slash = bare.indexOf('/');
  if (slash <= 0) {
    return null;
  }
  const host = bare.slice(0, slash).toLowerCase();
  let repository = bare.slice(slash + 1);
  const colon = repository.lastIndexOf(':');
  if (colon !== -1) {
    repository = repository.slice(0, colon);
  }
  return { host, repository };
}

/** Seconds since the epoch → ISO 8601; undefined and absurd values → null. */
export function fromEpochSeconds(s: number | undefined): string | null {
  return s === undefined || !Number.isFinite(s) || s <= 0 || s > 1e11 ? null : new Date(s * 1000).toISOString();
}
