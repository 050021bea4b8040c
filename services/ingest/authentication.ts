import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { WebhookSource } from '../common/domain/registry-event.ts';
import { WebhookError } from '../common/errors.ts';
import { headerValue, type Source } from './sources.ts';

/**
 * A configured webhook secret (config.webhookSecrets). A source without any refuses every
 * delivery; a secret with a registry names the registry its deliveries come from.
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
