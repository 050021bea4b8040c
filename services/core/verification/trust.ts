import { createHash, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { type Policy, verificationRules } from '../../common/policy/policy.ts';

/** A trusted root as loaded from a `trusted_root.json` file; `version` is the sha256 of the file. */
export interface LoadedTrustedRoot {
  readonly root: TrustedRoot;
  readonly version: string;
  readonly path: string;
}

/** A public key operators trust for key-based (non-keyless) cosign signatures. */
export interface TrustedKey {
  readonly name: string;
  /** `sha256:<hex>` of the DER SubjectPublicKeyInfo, the same form cosign and Rekor use. */
  readonly fingerprint: string;
  readonly key: KeyObject;
}

export class TrustConfigError extends Error {
  override readonly name = 'TrustConfigError';
}

export async function loadTrustedRoot(path: string): Promise<LoadedTrustedRoot> {
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (err) {
    throw new TrustConfigError(`cannot read the trusted root ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseTrustedRoot(text, path);
}

/** Parses the bytes of a `trusted_root.json`; `version` is their sha256. `source` names it in errors and logs. */
export function parseTrustedRoot(text: Uint8Array, source: string): LoadedTrustedRoot {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text).toString('utf8'));
  } catch (err) {
    throw new TrustConfigError(`the trusted root ${source} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== 'string' || !mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw new TrustConfigError(`${source} is not a Sigstore trusted root (mediaType ${JSON.stringify(mediaType)})`);
  }
  const root = TrustedRoot.fromJSON(json);
  if (root.certificateAuthorities.length === 0 && root.tlogs.length === 0) {
    throw new TrustConfigError(`the trusted root ${source} has neither certificate authorities nor transparency logs`);
  }
  return { root, version: `sha256:${createHash('sha256').update(text).digest('hex')}`, path: source };
}

/**
 * Loads every trusted root named: a file, or a directory whose `*.json` files are roots (sorted by
 * name). Two files with the same content count once. Any unreadable root stops start-up.
 */
export async function loadTrustedRoots(paths: readonly string[]): Promise<LoadedTrustedRoot[]> {
  const files: string[] = [];
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      throw new TrustConfigError(`cannot read the trusted root ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (isDir) {
      const names = (await readdir(path)).filter((f) => f.endsWith('.json')).sort();
      if (names.length === 0) {
        throw new TrustConfigError(`the trusted root directory ${path} has no *.json files`);
      }
      files.push(...names.map((n) => join(path, n)));
    } else {
      files.push(path);
    }
  }
  if (files.length === 0) {
    throw new TrustConfigError('no trusted root is configured (SIGNET_TRUSTED_ROOT)');
  }
  const roots = await Promise.all(files.map((f) => loadTrustedRoot(f)));
  return roots.filter((r, i) => roots.findIndex((o) => o.version === r.version) === i);
}

export function keyFingerprint(key: KeyObject): string {
  return `sha256:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

/**
 * SubjectPublicKeyInfo prefixes of uncompressed P-256 and P-384 keys with a named curve, and their
 * full lengths: for these, the certificate's bytes are what exporting its key gives.
 */
const STANDARD_EC_SPKI = [
  { prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), length: 91 },
  { prefix: Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'), length: 120 },
];

/**
 * {@link keyFingerprint} of a certificate's key. Fulcio's keys (uncompressed P-256/P-384) are
 * hashed as the certificate carries them, without exporting the key; anything else is exported.
 */
export function certificateKeyFingerprint(cert: X509Certificate): string {
  const key = cert.publicKey; // parses and checks the key, as exporting it would
  const spki = subjectPublicKeyInfo(cert.raw);
  if (spki !== null && STANDARD_EC_SPKI.some((s) => spki.length === s.length && spki.subarray(0, s.prefix.length).equals(s.prefix))) {
    return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
  }
  return keyFingerprint(key);
}

/** The SubjectPublicKeyInfo element of a DER certificate (the 7th of its TBSCertificate, counting the version); null if unreadable. */
function subjectPublicKeyInfo(der: Buffer): Buffer | null {
  const header = (at: number): { start: number; end: number } | null => {
    const first = der[at + 1];
    if (first === undefined) {
      return null;
    }
    if (first < 0x80) {
      return { start: at + 2, end: at + 2 + first };
    }
    const n = first & 0x7f;
    if (n === 0 || n > 3) {
      return null;
    }
    let length = 0;
    for (let i = 0; i < n; i++) {
      length = length * 256 + (der[at + 2 + i] ?? 0);
    }
    return { start: at + 2 + n, end: at + 2 + n + length };
  };
  const cert = header(0);
  const tbs = cert === null ? null : header(cert.start);
  if (tbs === null || der[0] !== 0x30 || der[cert!.start] !== 0x30) {
    return null;
  }
  let at = tbs.start;
  // version [0] (explicit, optional), serialNumber, signature, issuer, validity, subject
  for (let skip = der[at] === 0xa0 ? 6 : 5; skip > 0; skip--) {
    const el = header(at);
    if (el === null) {
      return null;
    }
    at = el.end;
  }
  const spki = header(at);
  return spki === null || der[at] !== 0x30 || spki.end > tbs.end ? null : der.subarray(at, spki.end);
}

/** Loads every `*.pub`/`*.pem` public key in `dir`. A file that is not a public key stops start-up. */
export async function loadTrustedKeys(dir: string | null): Promise<TrustedKey[]> {
  if (dir === null) {
    return [];
  }
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /\.(pub|pem)$/i.test(f)).sort();
  } catch (err) {
    throw new TrustConfigError(`cannot read SIGNET_TRUSTED_KEYS directory ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const keys: TrustedKey[] = [];
  for (const file of files) {
    const path = join(dir, file);
    let key: KeyObject;
    try {
      key = createPublicKey(await readFile(path, 'utf8'));
    } catch (err) {
      throw new TrustConfigError(`${path} is not a PEM public key: ${(err as Error).message}`, { cause: err });
    }
    keys.push({ name: basename(file).replace(/\.(pub|pem)$/i, ''), fingerprint: keyFingerprint(key), key });
  }
  return keys;
}

/** Keys a policy names (`key:` rules), as trusted keys for the verifier: the policy decides what they may sign. */
export function policyKeys(policy: Policy): TrustedKey[] {
  // Scopes' rules too: a key a scope's rule names verifies signatures like a top-level one.
  return verificationRules(policy).flatMap(({ host, prefix, rule: r }) => [
    ...(r.kind === 'key' ? r.keys.map((k) => ({ name: `policy:${prefix}${host}/${r.pattern}`, fingerprint: k.fingerprint, key: k.key })) : []),
    // Keys an attestation requirement names sign attestations: they verify too.
    ...r.attestations.flatMap((a) =>
      a.signer.kind === 'key' ? a.signer.keys.map((k) => ({ name: `policy:${prefix}${host}/${r.pattern}:${a.name}`, fingerprint: k.fingerprint, key: k.key })) : [],
    ),
  ]);
}

/** The kinds of trusted key material a root holds. */
export type TrustKind = 'ca' | 'tlog' | 'ctlog' | 'tsa';

/**
 * When each kind of key material in `root` stops being usable: for every entry still in force
 * (no end of validity, or one after `now` — entries already past theirs are kept only to verify
 * old signatures), the earlier of its validity's end and its certificates' `notAfter`; the
 * earliest of these per kind. Kinds whose entries never expire are left out.
 */
export function trustExpiry(root: TrustedRoot, now = new Date()): Partial<Record<TrustKind, Date>> {
  const out: Partial<Record<TrustKind, Date>> = {};
  const consider = (kind: TrustKind, end: Date | undefined, certs: readonly { rawBytes: Buffer }[]) => {
    if (end !== undefined && end <= now) {
      return;
    }
    const ends = [...(end === undefined ? [] : [end]), ...certs.map((c) => new Date(new X509Certificate(c.rawBytes).validTo))];
    const first = ends.reduce<Date | undefined>((a, b) => (a === undefined || b < a ? b : a), undefined);
    const known = out[kind];
    if (first !== undefined && (known === undefined || first < known)) {
      out[kind] = first;
    }
  };
  for (const ca of root.certificateAuthorities) {
    consider('ca', ca.validFor?.end, ca.certChain?.certificates ?? []);
  }
  for (const tsa of root.timestampAuthorities) {
    consider('tsa', tsa.validFor?.end, tsa.certChain?.certificates ?? []);
  }
  for (const tlog of root.tlogs) {
    consider('tlog', tlog.publicKey?.validFor?.end, []);
  }
  for (const ctlog of root.ctlogs) {
    consider('ctlog', ctlog.publicKey?.validFor?.end, []);
  }
  return out;
}
