import { createHash } from 'node:crypto';

/** A content digest in canonical form, `sha256:` followed by 64 lower-case hex characters. */
export type Digest = string & { readonly __brand: 'Digest' };

const SHA256 = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && SHA256.test(value);
}

/** Returns the digest, or throws naming what is wrong. Only sha256 is accepted. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) {
    throw new TypeError(`not a sha256 digest: ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

export function sha256Digest(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** `sha256:abc…` → `sha256-abc…`, the prefix of cosign's signature tags. */
export function digestTagPrefix(digest: Digest): string {
  return digest.replace(':', '-');
}

/** cosign's legacy signature tag for a subject digest: `sha256-<hex>.sig`. */
export function cosignSignatureTag(digest: Digest): string {
  return `${digestTagPrefix(digest)}.sig`;
}

const COSIGN_TAG = /^sha256-([0-9a-f]{64})(?:\.(sig|att|sbom))?$/;

/**
 * If `tag` is a cosign artifact tag (`sha256-<hex>.sig|.att|.sbom`) or the referrers tag schema's
 * `sha256-<hex>` (an index of the digest's referrers), the subject digest and kind.
 */
export function parseCosignTag(tag: string): { subject: Digest; kind: 'sig' | 'att' | 'sbom' | 'referrers' } | null {
  const m = COSIGN_TAG.exec(tag);
  if (m === null) {
    return null;
  }
  return { subject: `sha256:${m[1]}` as Digest, kind: (m[2] ?? 'referrers') as 'sig' | 'att' | 'sbom' | 'referrers' };
}
