import { isDigest } from './digest.ts';
import { type SignatureRecord, type SignatureVerdict, unprovenVerdict } from './signature.ts';

// What the ledger can store as it is. Postgres refuses NUL (U+0000) in `text` and `jsonb`, and lone
// UTF-16 surrogates in `jsonb` (in `text` the driver's UTF-8 encoding would turn them into U+FFFD
// without a word). Registries and signed payloads are hostile, and one refused value used to fail
// a whole ledger write on every retry. The rule (README, "Hostile input"):
//
// - identity-bearing fields, and the signature material `signet reverify` reads again, are never
//   altered: a signature whose subject, issuer, predicate type, key or certificate fingerprints,
//   key name, Rekor coordinates, layer digest or layer annotations cannot be stored exactly (or
//   whose times fall outside years 1–9999) is recorded `malformed`, with a reason naming the
//   field, and proves nothing (no identity, key, certificate or Rekor entry);
// - descriptive text (reasons, claims, layer annotations as kept for the record, platforms, status
//   reasons) is stored with each NUL and each lone surrogate replaced by U+FFFD, keys of JSON
//   objects too (if two keys become equal, the later one wins). Replaced, never removed: identity
//   fields may not contain U+FFFD at all, so sanitised text can never pass for an identity.

export const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * How the reason of a signature set aside by this rule begins. Its stored material is not the
 * material found, so `signet reverify` leaves it as it is.
 */
export const UNSTORABLE_REASON = 'unstorable: ';

/** Whether a stored signature was set aside as `malformed` because it could not be stored as found. */
export function isSetAside(s: { readonly outcome: string; readonly reason: string | null }): boolean {
  return s.outcome === 'malformed' && s.reason !== null && s.reason.startsWith(UNSTORABLE_REASON);
}

/** Whether Postgres stores `s` exactly as it is: no NUL, no lone surrogate. */
export function isStorableText(s: string): boolean {
  return !s.includes('\u0000') && s.isWellFormed();
}

/** `s` with each NUL and each lone surrogate replaced by U+FFFD; `s` itself when there is none. */
export function storableText(s: string): string {
  return isStorableText(s) ? s : s.toWellFormed().replaceAll('\u0000', REPLACEMENT_CHARACTER);
}

/** A JSON value (objects and arrays at any depth) with every string, key or value, made storable. */
export function storableJson<T>(value: T): T {
  return sanitizeJson(value) as T;
}

function sanitizeJson(value: unknown): unknown {
  if (typeof value === 'string') {
    return storableText(value);
  }
  if (Array.isArray(value)) {
    return value.map(sanitizeJson);
  }
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[storableText(k)] = sanitizeJson(v);
    }
    return out;
  }
  return value;
}

/** Identity text is stored exactly or not at all; U+FFFD is refused too (it is what invalid UTF-8 decodes to). */
function isIdentityText(s: string): boolean {
  return isStorableText(s) && !s.includes(REPLACEMENT_CHARACTER);
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what certificates and logs can mean (RFC 5280 ends at 9999). */
const MIN_TIME = Date.parse('0001-01-01T00:00:00Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z');
const MAX_BIGINT = 2n ** 63n - 1n;
/** The `predicate_type` column's length limit. */
const MAX_PREDICATE_TYPE = 1024;

function isStorableTime(d: Date): boolean {
  const t = d.getTime();
  return Number.isFinite(t) && t >= MIN_TIME && t <= MAX_TIME;
}

function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 80 ? `${q.slice(0, 79)}…` : q;
}

/** Why `sig` cannot be stored as verified (its identity-bearing fields or its material), or null. */
export function unstorableMaterial(sig: SignatureRecord): string | null {
  if (!isDigest(sig.layerDigest)) {
    return `the layer digest ${quote(sig.layerDigest)} is not a sha256 digest`;
  }
  for (const [key, value] of Object.entries(sig.layerAnnotations)) {
    if (!isStorableText(key) || !isStorableText(value)) {
      return `the layer annotation ${quote(key)} holds a NUL or a lone UTF-16 surrogate`;
    }
  }
  const v = sig.verdict;
  const texts: [string, string | null | undefined][] = [
    ['signer subject', v.identity?.subject],
    ['signer issuer', v.identity?.issuer],
    ['predicate type', v.predicateType],
    ['key fingerprint', v.key?.fingerprint],
    ['key name', v.key?.name],
    ['certificate fingerprint', v.certificate?.fingerprint],
    ['Rekor log id', v.rekor?.logId],
  ];
  for (const [field, value] of texts) {
    if (value !== null && value !== undefined && !isIdentityText(value)) {
      return `the ${field} ${quote(value)} holds a NUL, a lone UTF-16 surrogate or U+FFFD (invalid UTF-8)`;
    }
  }
  if (v.predicateType !== null && v.predicateType.length > MAX_PREDICATE_TYPE) {
    return `the predicate type is longer than ${MAX_PREDICATE_TYPE} characters`;
  }
  if (v.rekor !== null && !(/^\d{1,19}$/.test(v.rekor.logIndex) && BigInt(v.rekor.logIndex) <= MAX_BIGINT)) {
    return `the Rekor log index ${quote(v.rekor.logIndex)} is not a 64-bit log index`;
  }
  const times: [string, Date | null | undefined][] = [
    ['certificate validity start', v.certificate?.notBefore],
    ['certificate validity end', v.certificate?.notAfter],
    ['Rekor integrated time', v.rekor?.integratedTime],
    ['timestamp authority time', v.tsaTime],
  ];
  for (const [field, value] of times) {
    if (value !== null && value !== undefined && !isStorableTime(value)) {
      return `the ${field} is not a time between the years 1 and 9999`;
    }
  }
  return null;
}

/**
 * `sig` as the ledger stores it (see the rule above): `malformed`, proving nothing, when an
 * identity-bearing field or its material cannot be stored exactly; its descriptive text made
 * storable either way. A record with nothing to change comes back equal.
 */
export function storableSignature(sig: SignatureRecord): SignatureRecord {
  const problem = unstorableMaterial(sig);
  const found = sig.verdict;
  const verdict: SignatureVerdict =
    problem === null
      ? found
      : {
          ...unprovenVerdict('malformed', `${UNSTORABLE_REASON}${problem}; recorded as malformed instead of ${found.outcome}`, found.trustRootVersion),
          // What kind of artifact it is stays known when the predicate type itself is fine.
          predicateType: found.predicateType !== null && isIdentityText(found.predicateType) && found.predicateType.length <= MAX_PREDICATE_TYPE ? found.predicateType : null,
        };
  return {
    ...sig,
    layerDigest: storableText(sig.layerDigest),
    layerAnnotations: storableJson(sig.layerAnnotations),
    verdict: {
      ...verdict,
      reason: verdict.reason === null ? null : storableText(verdict.reason),
      claims: storableJson(verdict.claims),
      trustRootVersion: storableText(verdict.trustRootVersion),
    },
  };
}
