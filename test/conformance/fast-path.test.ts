// The differential test of the fast keyless certificate step (services/core/verification/
// fast-certificate.ts): a verifier with it and one where sigstore-js does everything must give the
// same verdict, field for field, on every signature fixture in test/fixtures under every trusted
// root there, and on a fast-check corpus of mutations of them (flipped bytes in the signature,
// certificate, payload, Rekor entry, SET, inclusion proof; times moved outside the certificate's
// and the logs' validity; trusted roots with CAs reordered, duplicated, cut or out of time).
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../services/common/domain/digest.ts';
import type { SignatureVerdict } from '../../services/common/domain/signature.ts';
import type { CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import { keyFingerprint, parseTrustedRoot, type LoadedTrustedRoot, type TrustedKey } from '../../services/core/verification/trust.ts';
import { createSignatureVerifier, type BundleSubject, type SignatureVerifier } from '../../services/core/verification/verifier.ts';
import { cosignLayerFromContainersImage, cosignLayersFromFixture, fixturePath } from '../helpers/fixtures.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 120);
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const;

type Json = any; // fixtures of several shapes, mutated by path

/** One signature to verify: a cosign layer and the digest it is attached to, or a bundle and its subject. */
type Input = { readonly name: string } & (
  | { readonly kind: 'layer'; readonly layer: CosignLayer; readonly subject: `sha256:${string}` }
  | { readonly kind: 'bundle'; readonly bundle: Buffer; readonly subject: BundleSubject }
);

interface Pair {
  readonly fast: SignatureVerifier;
  readonly reference: SignatureVerifier;
}

function pair(root: LoadedTrustedRoot, keys: readonly TrustedKey[] = []): Pair {
  return { fast: createSignatureVerifier(root, keys), reference: createSignatureVerifier(root, keys, { fastPath: false }) };
}

function verify(v: SignatureVerifier, input: Input): SignatureVerdict {
  return input.kind === 'layer' ? v.verifyCosignLayer(input.layer, parseDigest(input.subject)) : v.verifyBundle(input.bundle, input.subject);
}

/** Verifies with both; returns the verdict and whether the fast step answered. Fails the test on any difference. */
function compare(p: Pair, input: Input): { verdict: SignatureVerdict; fastHit: boolean } {
  const before = p.fast.fastPathStats?.hits ?? 0;
  const verdict = verify(p.fast, input);
  const reference = verify(p.reference, input);
  expect(verdict, input.name).toEqual(reference);
  return { verdict, fastHit: (p.fast.fastPathStats?.hits ?? 0) > before };
}

const rootFile = (path: string) => parseTrustedRoot(readFileSync(path), path);
const ROOT_FILES = [
  fixturePath('trust-roots/public-good/trusted_root.json'),
  fixturePath('trust-roots/staging/trusted_root.json'),
  fixturePath('trust-roots/github-trusted-root.json'),
  fixturePath('cosign/new-bundle-format/trusted_root_pgi.json'),
];
const PUBLIC_GOOD = ROOT_FILES[0]!;

function cosignInputs(): Input[] {
  const dirs = ['cosign/connaisseur-testimage/manifests', 'cosign/salrashid123-server_image', 'cosign/salrashid123-securebuild-bazel'];
  const inputs: Input[] = dirs.flatMap((dir) =>
    readdirSync(fixturePath(dir))
      .filter((f) => /^sha256-[0-9a-f]{64}\.sig\.json$/.test(f))
      .flatMap((f) =>
        cosignLayersFromFixture(dir, f).map((layer, i): Input => ({
          name: `${dir}/${f}#${i}`,
          kind: 'layer',
          layer,
          subject: `sha256:${f.slice(7, 71)}`,
        })),
      ),
  );
  for (const dir of ['dir-img-cosign-fulcio-rekor-valid', 'dir-img-cosign-key-rekor-valid', 'dir-img-cosign-valid', 'dir-img-cosign-modified-manifest']) {
    const base = `cosign/containers-image/${dir}`;
    if (existsSync(fixturePath(`${base}/signature-1`))) {
      const manifest = readFileSync(fixturePath(`${base}/manifest.json`));
      inputs.push({ name: base, kind: 'layer', layer: cosignLayerFromContainersImage(`${base}/signature-1`), subject: sha256(manifest) });
    }
  }
  return inputs;
}

/** A bundle's subject: the statement's first subject for DSSE, else the signed digest, with the artifact's bytes when they are beside it. */
function bundleInput(path: string): Input | null {
  const bytes = readFileSync(path);
  let json: Json;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { name: path, kind: 'bundle', bundle: bytes, subject: { digest: sha256(Buffer.alloc(0)) } };
  }
  if (json?.mediaType === undefined || String(json.mediaType).includes('trustedroot')) {
    return null;
  }
  if (json.dsseEnvelope !== undefined) {
    try {
      const statement = JSON.parse(Buffer.from(String(json.dsseEnvelope.payload), 'base64').toString('utf8'));
      return { name: path, kind: 'bundle', bundle: bytes, subject: { digest: `sha256:${String(statement.subject?.[0]?.digest?.sha256)}` } };
    } catch {
      return { name: path, kind: 'bundle', bundle: bytes, subject: { digest: sha256(Buffer.alloc(0)) } };
    }
  }
  const artifact = [join(dirname(path), 'artifact'), path.replace(/\.sigstore(\.json)?$/, ''), fixturePath('sigstore-bundles/conformance/a.txt')].find(
    (p) => p !== path && existsSync(p),
  );
  const bytesOf = artifact === undefined ? undefined : readFileSync(artifact);
  const digest = bytesOf === undefined ? sha256(Buffer.alloc(0)) : sha256(bytesOf);
  return { name: path, kind: 'bundle', bundle: bytes, subject: bytesOf === undefined ? { digest } : { digest, bytes: bytesOf } };
}

function bundleInputs(): Input[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        walk(p);
      } else if (/\.sigstore(\.json)?$|\.json$/.test(e.name) && !/trusted_root|PROVENANCE/.test(e.name)) {
        files.push(p);
      }
    }
  };
  walk(fixturePath('sigstore-bundles'));
  files.push(fixturePath('cosign/new-bundle-format/oci-attestation.sigstore.json'));
  return files.sort().flatMap((f) => bundleInput(f) ?? []);
}

/** The roots a fixture is checked under: every shared one, and the one in its own folder. */
function rootsFor(input: Input): string[] {
  const own = join(dirname(input.name), 'trusted_root.json');
  return existsSync(own) ? [...ROOT_FILES, own] : ROOT_FILES;
}

/** The root a fixture was made under: the one in its folder, else public-good. */
function ownRoot(input: Input): string {
  const own = join(dirname(input.name), 'trusted_root.json');
  return existsSync(own) ? own : PUBLIC_GOOD;
}

function keysFor(input: Input): TrustedKey[] {
  const dir = input.kind === 'bundle' ? dirname(input.name) : fixturePath('cosign/connaisseur-testimage/keys');
  return readdirSync(dir)
    .filter((f) => /\.pub$/.test(f))
    .map((f) => {
      try {
        const key = createPublicKey(readFileSync(join(dir, f), 'utf8'));
        return [{ name: basename(f, '.pub'), key, fingerprint: keyFingerprint(key) }];
      } catch {
        return [];
      }
    })
    .flat();
}

describe('the fast keyless path gives the verdict sigstore-js gives', () => {
  const inputs = [...cosignInputs(), ...bundleInputs()];
  const pairs = new Map<string, Pair>();
  const pairFor = (root: string, keys: readonly TrustedKey[]) => {
    const id = `${root}\n${keys.map((k) => k.fingerprint).join(',')}`;
    let p = pairs.get(id);
    if (p === undefined) {
      p = pair(rootFile(root), keys);
      pairs.set(id, p);
    }
    return p;
  };

  it('on every fixture under every trusted root, and it answers for the keyless ones that verify', () => {
    expect(inputs.length).toBeGreaterThan(60);
    const fastVerified: string[] = [];
    for (const input of inputs) {
      for (const root of rootsFor(input)) {
        const { verdict, fastHit } = compare(pairFor(root, keysFor(input)), input);
        if (fastHit && verdict.outcome === 'verified') {
          fastVerified.push(input.name);
        }
      }
    }
    // The fast step is really used: the real keyless signatures verify through it.
    expect(fastVerified).toContain('cosign/connaisseur-testimage/manifests/sha256-31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee.sig.json#0');
    expect(fastVerified.some((n) => n.endsWith('happy-path-v0.3/bundle.sigstore.json'))).toBe(true);
    expect(fastVerified.some((n) => n.endsWith('happy-path-intoto-in-dsse-v3/bundle.sigstore.json'))).toBe(true);
  });
});

// ---- mutations ----

const KEYLESS_LAYER = cosignInputs().find((i) => i.name.includes('31dc72a13a0c'))!;
const BUNDLE_SEEDS = ['happy-path-v0.1', 'happy-path-v0.3', 'happy-path-intoto-in-dsse-v3', 'bundle-with-sct-with-extensions', 'intoto-with-custom-trust-root'].map(
  (c) => bundleInput(fixturePath(`sigstore-bundles/conformance/${c}/bundle.sigstore.json`))!,
);

/** Where a bundle JSON keeps each part a mutation may hit, and how it is encoded. */
const BUNDLE_FIELDS: readonly (readonly [string, 'b64' | 'int'])[] = [
  ['verificationMaterial.x509CertificateChain.certificates.0.rawBytes', 'b64'],
  ['verificationMaterial.certificate.rawBytes', 'b64'],
  ['messageSignature.signature', 'b64'],
  ['messageSignature.messageDigest.digest', 'b64'],
  ['dsseEnvelope.signatures.0.sig', 'b64'],
  ['dsseEnvelope.payload', 'b64'],
  ['verificationMaterial.tlogEntries.0.canonicalizedBody', 'b64'],
  ['verificationMaterial.tlogEntries.0.inclusionPromise.signedEntryTimestamp', 'b64'],
  ['verificationMaterial.tlogEntries.0.inclusionProof.hashes.0', 'b64'],
  ['verificationMaterial.tlogEntries.0.inclusionProof.rootHash', 'b64'],
  ['verificationMaterial.tlogEntries.0.logId.keyId', 'b64'],
  ['verificationMaterial.tlogEntries.0.integratedTime', 'int'],
  ['verificationMaterial.tlogEntries.0.logIndex', 'int'],
];

function at(obj: Json, path: string): { parent: Json; key: string } | null {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    cur = cur?.[p];
  }
  const key = parts.at(-1)!;
  return cur?.[key] === undefined ? null : { parent: cur, key };
}

function flipBase64(b64: string, index: number, bit: number): string {
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > 0) {
    bytes[index % bytes.length]! ^= 1 << bit;
  }
  return bytes.toString('base64');
}

/** A time shift that lands outside some validity window: seconds, hours, a year, or back to the epoch. */
const shift = fc.constantFrom(-1, 1, -601, 601, -3600 * 24 * 400, 3600 * 24 * 400, -1e9, 1e10);

const bundleMutation = fc.record({
  seed: fc.nat(),
  field: fc.nat(),
  index: fc.nat(),
  bit: fc.integer({ min: 0, max: 7 }),
  delta: shift,
});

function mutateBundle(m: { seed: number; field: number; index: number; bit: number; delta: number }): Input {
  const seed = BUNDLE_SEEDS[m.seed % BUNDLE_SEEDS.length]!;
  if (seed.kind !== 'bundle') {
    throw new Error('bundle seed expected');
  }
  const json: Json = JSON.parse(seed.bundle.toString('utf8'));
  const present = BUNDLE_FIELDS.filter(([path]) => at(json, path) !== null);
  const [path, encoding] = present[m.field % present.length]!;
  const { parent, key } = at(json, path)!;
  parent[key] = encoding === 'b64' ? flipBase64(String(parent[key]), m.index, m.bit) : String(Math.max(0, Number(parent[key]) + m.delta));
  return { ...seed, name: `${seed.name} ${path}`, bundle: Buffer.from(JSON.stringify(json)) };
}

const LAYER_FIELDS = ['signature', 'certificate', 'payload', 'body', 'set', 'integratedTime', 'logIndex'] as const;

function mutateLayer(m: { field: number; index: number; bit: number; delta: number }): Input {
  if (KEYLESS_LAYER.kind !== 'layer') {
    throw new Error('layer seed expected');
  }
  const annotations: Record<string, string> = { ...KEYLESS_LAYER.layer.annotations };
  let payload = KEYLESS_LAYER.layer.payload;
  const rekor: Json = JSON.parse(annotations['dev.sigstore.cosign/bundle']!);
  const field = LAYER_FIELDS[m.field % LAYER_FIELDS.length]!;
  switch (field) {
    case 'signature':
      annotations['dev.cosignproject.cosign/signature'] = flipBase64(annotations['dev.cosignproject.cosign/signature']!, m.index, m.bit);
      break;
    case 'certificate': {
      const pem = annotations['dev.sigstore.cosign/certificate']!;
      const der = flipBase64(pem.replace(/-----[^-]+-----|\s/g, ''), m.index, m.bit);
      annotations['dev.sigstore.cosign/certificate'] = `-----BEGIN CERTIFICATE-----\n${der.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
      break;
    }
    case 'payload': {
      payload = Buffer.from(payload);
      payload[m.index % payload.length]! ^= 1 << m.bit;
      break;
    }
    case 'body':
      rekor.Payload.body = flipBase64(rekor.Payload.body, m.index, m.bit);
      break;
    case 'set':
      rekor.SignedEntryTimestamp = flipBase64(rekor.SignedEntryTimestamp, m.index, m.bit);
      break;
    case 'integratedTime':
      rekor.Payload.integratedTime = Math.max(0, Number(rekor.Payload.integratedTime) + m.delta);
      break;
    case 'logIndex':
      rekor.Payload.logIndex = Math.max(0, Number(rekor.Payload.logIndex) + m.delta);
      break;
  }
  annotations['dev.sigstore.cosign/bundle'] = JSON.stringify(rekor);
  return { ...KEYLESS_LAYER, name: `${KEYLESS_LAYER.name} ${field}`, layer: { payload, annotations } };
}

/** Ways to change a trusted root that touch what the fast step proves once per root. */
const ROOT_MUTATIONS = [
  'reverse CAs',
  'duplicate first CA',
  'drop chain head',
  'drop chain root',
  'swap chain order',
  'CA window before signing',
  'CA window after signing',
  'CA window ends at signing',
  'no ctlogs',
  'ctlog window before signing',
  'no tlogs',
] as const;

function mutateRoot(base: Json, mutation: (typeof ROOT_MUTATIONS)[number], signedAt: number, caIndex: number): Json {
  const root: Json = structuredClone(base);
  const cas: Json[] = root.certificateAuthorities;
  const ca = cas[caIndex % cas.length];
  const iso = (s: number) => new Date(s * 1000).toISOString();
  switch (mutation) {
    case 'reverse CAs':
      cas.reverse();
      break;
    case 'duplicate first CA':
      cas.unshift(structuredClone(cas[0]));
      break;
    case 'drop chain head':
      ca.certChain.certificates.shift();
      break;
    case 'drop chain root':
      ca.certChain.certificates.pop();
      break;
    case 'swap chain order':
      ca.certChain.certificates.reverse();
      break;
    case 'CA window before signing':
      ca.validFor = { start: iso(signedAt - 7200), end: iso(signedAt - 1) };
      break;
    case 'CA window after signing':
      ca.validFor = { start: iso(signedAt + 1) };
      break;
    case 'CA window ends at signing':
      ca.validFor = { start: iso(signedAt - 7200), end: iso(signedAt) };
      break;
    case 'no ctlogs':
      root.ctlogs = [];
      break;
    case 'ctlog window before signing':
      for (const log of root.ctlogs) {
        log.publicKey.validFor = { start: iso(signedAt - 7200), end: iso(signedAt - 3600) };
      }
      break;
    case 'no tlogs':
      root.tlogs = [];
      break;
  }
  return root;
}

describe('the fast keyless path gives the verdict sigstore-js gives on mutated signatures', () => {
  const publicGood = pair(rootFile(PUBLIC_GOOD));
  const seedPairs = new Map(BUNDLE_SEEDS.map((s) => [s.name, pair(rootFile(ownRoot(s)))]));

  it('cosign layers with a flipped byte or a moved time', () => {
    fc.assert(
      fc.property(fc.record({ field: fc.nat(), index: fc.nat(), bit: fc.integer({ min: 0, max: 7 }), delta: shift }), (m) => {
        const input = mutateLayer(m);
        const { verdict } = compare(publicGood, input);
        // Every one of these breaks something sigstore or Signet checks.
        expect(verdict.outcome, input.name).not.toBe('verified');
      }),
      { numRuns: RUNS },
    );
  });

  it('bundles with a flipped byte or a moved time', () => {
    fc.assert(
      fc.property(bundleMutation, (m) => {
        const input = mutateBundle(m);
        compare(seedPairs.get(input.name.split(' ')[0]!)!, input);
      }),
      { numRuns: RUNS },
    );
  });

  it('trusted roots with their CAs reordered, duplicated, cut or out of time, and their logs gone or out of time', () => {
    const seeds = [KEYLESS_LAYER, ...BUNDLE_SEEDS];
    const signedAt = (input: Input): number => {
      const t =
        input.kind === 'layer'
          ? Number(JSON.parse(input.layer.annotations['dev.sigstore.cosign/bundle']!).Payload.integratedTime)
          : Number(JSON.parse(input.bundle.toString('utf8')).verificationMaterial.tlogEntries[0]?.integratedTime);
      return Number.isFinite(t) && t > 0 ? t : Math.floor(Date.now() / 1000); // a bundle timed by a TSA only
    };
    fc.assert(
      fc.property(fc.nat(), fc.constantFrom(...ROOT_MUTATIONS), fc.nat(), (s, mutation, caIndex) => {
        const input = seeds[s % seeds.length]!;
        const rootPath = ownRoot(input);
        const json = mutateRoot(JSON.parse(readFileSync(rootPath, 'utf8')), mutation, signedAt(input), caIndex);
        compare(pair(parseTrustedRoot(Buffer.from(JSON.stringify(json)), `${rootPath} (${mutation})`)), input);
      }),
      { numRuns: Math.max(30, Math.round(RUNS / 2)) },
    );
  });
});
