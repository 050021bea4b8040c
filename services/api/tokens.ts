import { createHash, timingSafeEqual } from 'node:crypto';

/** SIGNET_API_TOKENS as sha256 digests: every comparison is of equal lengths, in constant time. */
export function tokenDigests(tokens: readonly string[]): Buffer[] {
  return tokens.map(digestOf);
}

function digestOf(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The token of `Authorization: Bearer <token>`, or null. */
export function bearerToken(header: string | undefined): string | null {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? null;
}

/**
 * The API token a request presents: `Authorization: Bearer <token>`, or HTTP Basic with any user
 * name and the token as password (what a browser can send after its login prompt).
 */
export function presentedToken(header: string | undefined): string | null {
  const bearer = bearerToken(header);
  if (bearer !== null) {
    return bearer;
  }
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (basic === null) {
    return null;
  }
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? null : decoded.slice(colon + 1);
}

/** Constant time: the presented token against every configured one (their digests). */
export function tokenMatches(presented: string | null, digests: readonly Buffer[]): boolean {
  const d = digestOf(presented ?? '');
  let ok = false;
  for (const t of digests) {
    ok = timingSafeEqual(d, t) || ok;
  }
  return ok && presented !== null;
}
