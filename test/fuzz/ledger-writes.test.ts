// Property-based tests of the ledger write against a real Postgres: whatever a registry or a signed
// payload puts into a stored field — NUL, lone UTF-16 surrogates, invalid UTF-8, absurd times and
// log indexes — the write of an indexed image succeeds through the real query modules, nothing
// stored holds NUL or a lone surrogate, an identity is stored exactly as verified or not at all
// (the signature is then `malformed`), and descriptive text is stored with U+FFFD in place of what
// Postgres refuses. Clean input is stored untouched.
//
// Runs FUZZ_RUNS cases per property (default 200; `npm run fuzz` runs 20,000).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as images from '../../services/common/db/queries/images.ts';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import { OUTCOMES } from '../../services/common/domain/outcome.ts';
import type { SignatureRecord, SignatureVerdict } from '../../services/common/domain/signature.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const settings = { numRuns: RUNS, interruptAfterTimeLimit: 20_000 };

const REGISTRY = 'registry.example';
const REPOSITORY = 'fuzz/app';

// ---- an independent statement of the rule (README, "Hostile input") ---------------------------

// eslint-disable-next-line no-control-regex -- NUL is exactly what is matched
const LONE_OR_NUL = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const hasUnstorable = (s: string) => new RegExp(LONE_OR_NUL.source).test(s);
/** Identity text is kept only when exactly storable and free of U+FFFD. */
const isCleanIdentity = (s: string | null | undefined) => s === null || s === undefined || (!hasUnstorable(s) && !s.includes('\ufffd'));
const sanitized = (s: string) => s.replace(LONE_OR_NUL, '\ufffd');
function sanitizedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) {
    out[sanitized(k)] = sanitized(v);
  }
  return out;
}
const inYears1To9999 = (d: Date | null | undefined) =>
  d === null || d === undefined || (Number.isFinite(d.getTime()) && d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999);

/** Whether the rule keeps this signature's verdict as found. */
function keepsVerdict(sig: SignatureRecord): boolean {
  const v = sig.verdict;
  return (
    /^sha256:[0-9a-f]{64}$/.test(sig.layerDigest) &&
    Object.entries(sig.layerAnnotations).every(([k, x]) => !hasUnstorable(k) && !hasUnstorable(x)) &&
    [v.identity?.subject, v.identity?.issuer, v.predicateType, v.key?.fingerprint, v.key?.name, v.certificate?.fingerprint, v.rekor?.logId].every(isCleanIdentity) &&
    (v.predicateType === null || v.predicateType.length <= 1024) &&
    (v.rekor === null || (/^\d{1,19}$/.test(v.rekor.logIndex) && BigInt(v.rekor.logIndex) < 2n ** 63n)) &&
    [v.certificate?.notBefore, v.certificate?.notAfter, v.rekor?.integratedTime, v.tsaTime].every(inYears1To9999)
  );
}

/** Every string in a stored value (keys of JSON objects too) that holds NUL or a lone surrogate. */
function unstorableIn(value: unknown): string[] {
  if (typeof value === 'string') {
    return hasUnstorable(value) ? [value] : [];
  }
  if (value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    return Object.entries(value).flatMap(([k, v]) => [...unstorableIn(k), ...unstorableIn(v)]);
  }
  return [];
}

// ---- arbitraries --------------------------------------------------------------------------------

/** Text as a hostile registry or payload can make it: any UTF-16 unit, NUL and lone surrogates favoured. */
const hostileText = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\u0000', '\ud800', '\udbff', '\udc00', '\udfff', '\ufffd', 'a', '/', ':', '@', ' '),
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('😀', 'é', '\u202e'),
  ),
  maxLength: 24,
});
/** Arbitrary bytes decoded as UTF-8, as registries' and payloads' bytes are (invalid sequences become U+FFFD). */
const decodedBytes = fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString('utf8'));
/** Text a registry or signer may well send: nothing Postgres refuses, no U+FFFD. */
const cleanText = fc.oneof(
  fc.constantFrom('alice@example.com', 'https://accounts.example.com', 'https://slsa.dev/provenance/v1', 'team-a', 'x'),
  fc.string({ unit: 'grapheme', maxLength: 24 }).filter((s) => isCleanIdentity(s)),
);
const text = fc.oneof(hostileText, decodedBytes, cleanText);
const digest = fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => sha256Digest(b));
const goodTime = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true });
const goodLogIndex = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String);

interface Fields {
  /** Identity-bearing text, the layer digest and the layer annotations (material). */
  readonly identity: fc.Arbitrary<string>;
  readonly time: fc.Arbitrary<Date>;
  readonly logIndex: fc.Arbitrary<string>;
  readonly layerDigest: fc.Arbitrary<string>;
  readonly predicateType: fc.Arbitrary<string>;
}

/** A signature record whose identity-bearing fields come from `f`; descriptive text is always hostile. */
function signatureOf(f: Fields): fc.Arbitrary<SignatureRecord> {
  const verdict: fc.Arbitrary<SignatureVerdict> = fc.record({
    outcome: fc.constantFrom(...OUTCOMES),
    reason: fc.option(text),
    identity: fc.option(fc.record({ kind: fc.constantFrom('email' as const, 'uri' as const, 'key' as const), subject: f.identity, issuer: fc.option(f.identity) })),
    claims: fc.dictionary(text, text, { maxKeys: 4 }),
    key: fc.option(fc.record({ fingerprint: f.identity, source: fc.constantFrom('certificate' as const, 'trusted_key' as const, 'tlog' as const), name: fc.option(f.identity) })),
    certificate: fc.option(fc.record({ fingerprint: f.identity, notBefore: f.time, notAfter: f.time })),
    rekor: fc.option(fc.record({ logId: f.identity, logIndex: f.logIndex, integratedTime: fc.option(f.time) })),
    tsaTime: fc.option(f.time),
    predicateType: fc.option(f.predicateType),
    annotations: fc.constant(null),
    trustRootVersion: fc.oneof(digest, text),
  });
  return fc.record({
    format: fc.constantFrom('cosign_legacy' as const, 'cosign_attestation' as const, 'sigstore_bundle' as const),
    materialDigest: digest,
    sourceDigest: digest,
    layerIndex: fc.nat({ max: 1000 }),
    layerDigest: f.layerDigest,
    payload: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    subjectBytes: fc.option(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
    layerAnnotations: fc.dictionary(f.identity, f.identity, { maxKeys: 4 }),
    verdict,
  });
}

const signature = fc.oneof(
  // As found on a well-behaved artifact (only its descriptive text hostile): kept as it is.
  signatureOf({ identity: cleanText, time: goodTime, logIndex: goodLogIndex, layerDigest: digest, predicateType: cleanText }),
  // Mostly clean: now and then one field poisoned.
  signatureOf({
    identity: fc.oneof({ weight: 12, arbitrary: cleanText }, { weight: 1, arbitrary: hostileText }, { weight: 1, arbitrary: decodedBytes }),
    time: fc.oneof({ weight: 12, arbitrary: goodTime }, { weight: 1, arbitrary: fc.date({ noInvalidDate: false }) }),
    logIndex: fc.oneof({ weight: 12, arbitrary: goodLogIndex }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String) }, { weight: 1, arbitrary: text }),
    layerDigest: fc.oneof({ weight: 12, arbitrary: digest }, { weight: 1, arbitrary: text }),
    predicateType: fc.oneof({ weight: 12, arbitrary: cleanText }, { weight: 1, arbitrary: text }, { weight: 1, arbitrary: fc.constant(`https://example.com/${'p'.repeat(1100)}`) }),
  }),
  // Anything at all.
  signatureOf({
    identity: text,
    time: fc.oneof(goodTime, fc.date({ noInvalidDate: false })),
    logIndex: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String), text),
    layerDigest: fc.oneof(digest, text),
    predicateType: fc.oneof(text, fc.constant(`https://example.com/${'p'.repeat(1100)}`)),
  }),
);

const indexed = fc.record({
  mediaType: fc.oneof(fc.constant('application/vnd.oci.image.index.v1+json'), text),
  signatures: fc.uniqueArray(signature, { maxLength: 4, selector: (s) => s.materialDigest }),
  discoveryError: fc.option(text),
  child: fc.record({
    mediaType: text,
    platform: fc.option(fc.record({ os: fc.option(text), architecture: fc.option(text), variant: fc.option(text) })),
    signatures: fc.uniqueArray(signature, { maxLength: 2, selector: (s) => s.materialDigest }),
  }),
});

// ---- the properties -----------------------------------------------------------------------------

let db: TestDb;
let run = 0;

beforeAll(async () => {
  db = await createTestDb();
});

afterAll(async () => {
  await db?.drop();
});

function storedSignatures(manifestId: string) {
  return db.db.selectFrom('signatures').selectAll().where('manifest_id', '=', manifestId).execute();
}

function checkStored(sig: SignatureRecord, row: Awaited<ReturnType<typeof storedSignatures>>[number]): void {
  expect(unstorableIn(row)).toEqual([]);
  const v = sig.verdict;
  // Descriptive text: replaced, never dropped, and clean text untouched.
  expect(row.annotations).toEqual(sanitizedRecord(sig.layerAnnotations));
  expect(row.claims).toEqual(keepsVerdict(sig) ? sanitizedRecord(v.claims) : {});
  expect(row.layer_digest).toBe(sanitized(sig.layerDigest));
  expect(row.payload.equals(sig.payload)).toBe(true);
  if (keepsVerdict(sig)) {
    expect(row.outcome).toBe(v.outcome);
    expect(row.reason).toBe(v.reason === null ? null : sanitized(v.reason));
    expect(row.subject).toBe(v.identity?.subject ?? null);
    expect(row.issuer).toBe(v.identity?.issuer ?? null);
    expect(row.predicate_type).toBe(v.predicateType);
    expect(row.key_name).toBe(v.key?.name ?? null);
    expect(row.rekor_log_id).toBe(v.rekor?.logId ?? null);
    expect(row.rekor_log_index).toBe(v.rekor?.logIndex === undefined ? null : String(BigInt(v.rekor.logIndex)));
  } else {
    // An identity that cannot be stored exactly is not stored at all: the signature proves nothing.
    expect(row).toMatchObject({ outcome: 'malformed', identity_id: null, subject: null, issuer: null, key_fingerprint: null, certificate_fingerprint: null, rekor_log_index: null });
    expect(row.reason).toMatch(/^unstorable: /);
  }
  if (row.identity_id !== null) {
    expect(row.outcome).toBe('verified');
    expect(keepsVerdict(sig)).toBe(true);
  }
}

describe('ledger writes of hostile material (Postgres)', () => {
  it('any stored field of an indexed image and its signatures: the write succeeds, nothing unstorable or silently altered is stored', async () => {
    await fc.assert(
      fc.asyncProperty(indexed, async (m) => {
        run++;
        const parent = sha256Digest(`index-${run}`);
        const child = sha256Digest(`child-${run}`);
        const manifests: images.IndexedManifest[] = [
          { digest: parent, mediaType: m.mediaType, size: 1, parent: null, signatures: m.signatures, discoveryError: m.discoveryError },
          {
            digest: child,
            mediaType: m.child.mediaType,
            size: 2,
            parent: {
              digest: parent,
              position: 0,
              platform: m.child.platform === null ? null : { os: m.child.platform.os, architecture: m.child.platform.architecture, variant: m.child.platform.variant },
            },
            signatures: m.child.signatures,
            discoveryError: null,
          },
        ];
        const recorded = await images.recordIndexed(db.db, REGISTRY, REPOSITORY, manifests);
        const [parentId, childId] = recorded.manifests.map((r) => r.id) as [string, string];

        for (const [id, sigs] of [[parentId, m.signatures], [childId, m.child.signatures]] as const) {
          const rows = await storedSignatures(id);
          expect(rows).toHaveLength(sigs.length);
          for (const sig of sigs) {
            checkStored(sig, rows.find((r) => r.material_digest === sig.materialDigest)!);
          }
        }
        const [stored] = await images.byIds(db.db, [parentId]);
        expect(unstorableIn(stored)).toEqual([]);
        expect(stored!.mediaType).toBe(sanitized(m.mediaType));
        if (m.signatures.length === 0 && m.discoveryError !== null) {
          expect(stored!.statusReason).toBe(sanitized(m.discoveryError));
        }
        const [link] = await images.childrenOf(db.db, [parentId]);
        expect(unstorableIn(link)).toEqual([]);
        const p = m.child.platform;
        if (p !== null && (p.os !== null || p.architecture !== null)) {
          expect(link!.platform).toEqual({ os: p.os === null ? null : sanitized(p.os), architecture: p.architecture === null ? null : sanitized(p.architecture), variant: p.variant === null ? null : sanitized(p.variant) });
        }
      }),
      settings,
    );
  });

  it('a row Postgres still refuses is recorded malformed with its reason; the rest of the image is written', async () => {
    const good: SignatureRecord = {
      format: 'cosign_legacy',
      materialDigest: sha256Digest('good'),
      sourceDigest: sha256Digest('source'),
      layerIndex: 0,
      layerDigest: sha256Digest('layer-good'),
      payload: Buffer.from('{}'),
      subjectBytes: null,
      layerAnnotations: { note: 'fine' },
      verdict: {
        outcome: 'verified',
        reason: null,
        identity: { kind: 'email', subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
        claims: {},
        key: { fingerprint: 'sha256:abc', source: 'certificate', name: null },
        certificate: null,
        rekor: null,
        tsaTime: null,
        predicateType: null,
        annotations: null,
        trustRootVersion: sha256Digest('root'),
      },
    };
    // A value no sanitising rule knows about (here: a key source outside the column's CHECK).
    const refused: SignatureRecord = {
      ...good,
      materialDigest: sha256Digest('refused'),
      layerDigest: sha256Digest('layer-refused'),
      verdict: { ...good.verdict, key: { fingerprint: 'sha256:def', source: 'smuggled' as 'tlog', name: null } },
    };
    const digest: Digest = sha256Digest('refused-image');
    const [m] = (await images.recordIndexed(db.db, REGISTRY, REPOSITORY, [{ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, parent: null, signatures: [refused, good], discoveryError: null }])).manifests;
    expect(m).toMatchObject({ status: 'verified', signatureCount: 2, verifiedCount: 1 });
    const rows = await storedSignatures(m!.id);
    const r = rows.find((x) => x.material_digest === refused.materialDigest)!;
    expect(r).toMatchObject({ outcome: 'malformed', identity_id: null, subject: null, key_source: null });
    expect(r.reason).toMatch(/^unstorable: the ledger refused it \(.*signatures_key_source_check.*\); recorded as malformed instead of verified$/);
    expect(rows.find((x) => x.material_digest === good.materialDigest)).toMatchObject({ outcome: 'verified', subject: 'alice@example.com' });
  });
});
