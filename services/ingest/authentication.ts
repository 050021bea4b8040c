import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { RegistryEvent, WebhookSource } from '../common/domain/registry-event.ts';
import { WebhookError } from '../common/errors.ts';
import { headerValue, type Source } from './sources.ts';

/**
 * A configured webhook secret (config.webhookSecrets). A source without any refuses every
 * delivery; a secret with a registry names the registry its deliveries come from, and is the only
 * kind of secret that registry's deliveries are taken with ({@link refuseForeignRegistries}).
 */
export interface ConfiguredSecret {
  readonly source: WebhookSource;
  readonly secret: string;
  readonly registry: string | null;
}

/** A secret of one source, ready for constant-time comparisons. */
export interface SourceSecret {
  readonly secret: string;
  /** sha256 of the secret: fixed-length, so comparisons are constant-time whatever its length. */
  readonly digest: Buffer;
  readonly registry: string | null;
}

export function sourceSecrets(configured: readonly ConfiguredSecret[], source: WebhookSource): SourceSecret[] {
  return configured.filter((s) => s.source === source).map((s) => ({ secret: s.secret, digest: sha256(s.secret), registry: s.registry }));
}

/** The registries a secret is bound to (registries-file entries with a webhook), whatever its source. */
export function boundRegistries(configured: readonly ConfiguredSecret[]): ReadonlySet<string> {
  return new Set(configured.flatMap((s) => (s.registry === null ? [] : [s.registry.toLowerCase()])));
}

/**
 * A delivery speaks only for the registry its secret is bound to, and a registry with a bound
 * secret accepts no other: a delivery authenticated with an unbound secret (`SIGNET_WEBHOOK_TOKEN`,
 * `SIGNET_WEBHOOK_SECRET_<SOURCE>`, another registry's) that names a bound registry is refused
 * whole, before anything is recorded or queued. Throws {@link WebhookError} `FORBIDDEN`.
 */
export function refuseForeignRegistries(events: readonly RegistryEvent[], sender: SourceSecret | null, bound: ReadonlySet<string>): void {
  const own = sender?.registry?.toLowerCase() ?? null;
  for (const e of events) {
    if (own !== null && e.registry !== own) {
      throw new WebhookError('FORBIDDEN', `the secret that authenticated this delivery is bound to ${own}, but the delivery names ${e.registry}; nothing in it was recorded or queued`);
    }
    if (own === null && bound.has(e.registry)) {
      throw new WebhookError(
        'FORBIDDEN',
        `${e.registry} accepts deliveries only with the webhook secret the registries file binds to it; this delivery was authenticated with another secret, and nothing in it was recorded or queued`,
      );
    }
  }
}

export function sha256(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Authenticates a request before its body is read, so unauthenticated senders cannot make Signet
 * read their body: returns the secret presented (header and URL-token schemes), or null for an
 * HMAC scheme, whose header must at least be there and well-formed (its check needs the body: see
 * {@link verifyHmac}; server.ts reads such bodies under a small limit, a few at a time).
 * Throws {@link WebhookError} `UNAUTHORIZED`.
 */
export function authenticate(source: Source, secrets: readonly SourceSecret[], headers: IncomingHttpHeaders, token: string | null): SourceSecret | null {
  if (secrets.length === 0) {
    throw new WebhookError('UNAUTHORIZED', `webhooks from ${source.name} are disabled: no secret is configured (SIGNET_WEBHOOK_SECRET_${source.name.toUpperCase()}, the registries file or SIGNET_WEBHOOK_TOKEN)`);
  }
  if (source.auth === 'hmac-sha256') {
    if (!/^sha256=[0-9a-f]{64}$/i.test(headerValue(headers['x-hub-signature-256']) ?? '')) {
      throw new WebhookError('UNAUTHORIZED', 'missing or malformed X-Hub-Signature-256 header');
    }
    return null;
  }
  const header = headerValue(headers.authorization);
  const candidates = header === null ? [] : [header.replace(/^Bearer\s+/i, '').trim()];
  if (source.auth === 'url-token' && token !== null) {
    candidates.push(token);
  }
  for (const c of candidates) {
    const match = matchSecret(secrets, c);
    if (match !== undefined) {
      return match;
    }
  }
  throw new WebhookError('UNAUTHORIZED', source.auth === 'url-token' ? 'missing or wrong token (?token= or Authorization)' : 'missing or wrong secret in the Authorization header');
}

/** GitHub's signature: HMAC-SHA256 of the raw body under one of the secrets, compared in constant time. */
export function verifyHmac(secrets: readonly SourceSecret[], headers: IncomingHttpHeaders, raw: Buffer): SourceSecret {
  const presented = Buffer.from((headerValue(headers['x-hub-signature-256']) ?? '').slice('sha256='.length), 'hex');
  let found: SourceSecret | undefined;
  for (const s of secrets) {
    const expected = createHmac('sha256', s.secret).update(raw).digest();
    if (presented.length === expected.length && timingSafeEqual(presented, expected) && found === undefined) {
      found = s;
    }
  }
  if (found === undefined) {
    throw new WebhookError('UNAUTHORIZED', 'X-Hub-Signature-256 does not match the body under any configured secret');
  }
  return found;
}

/** The secret whose digest equals `presented`'s, comparing against every one (constant-time each). */
function matchSecret(secrets: readonly SourceSecret[], presented: string): SourceSecret | undefined {
  const digest = sha256(presented);
  let found: SourceSecret | undefined;
  for (const s of secrets) {
    if (timingSafeEqual(digest, s.digest) && found === undefined) {
      found = s;
    }
  }
  return found;
}
