// Property-based tests over every parser that reads input an attacker controls: webhook payloads,
// image references (webhooks and admission requests), manifests (registries), policies, and cosign
// signature layers. Any input must end in a correct result or Signet's own typed error — never
// another exception, a hang, or a verified signature made of junk.
//
// CI runs FUZZ_RUNS cases per property (default 200); `npm run fuzz` runs 20,000.
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRUSTED_ROOTS } from '../../services/common/config.ts';
import { isDigest, sha256Digest } from '../../services/common/domain/digest.ts';
import { formatImageReference, ImageReferenceError, isRegistryHost, isRepositoryName, parseImageReference } from '../../services/common/domain/image-ref.ts';
import type { NormalizedDelivery } from '../../services/common/domain/registry-event.ts';
import { AppError } from '../../services/common/errors.ts';
import { ANY_IDENTITY_PROBES, parsePolicy, PolicyConfigError } from '../../services/common/policy/policy.ts';
import { normalizeAcr } from '../../services/ingest/registries/acr.ts';
import type { NormalizeContext } from '../../services/ingest/registries/delivery-builder.ts';
import { normalizeDistribution } from '../../services/ingest/registries/distribution.ts';
import { normalizeDockerHub } from '../../services/ingest/registries/dockerhub.ts';
import { normalizeEcr } from '../../services/ingest/registries/ecr.ts';
import { normalizeGar } from '../../services/ingest/registries/gar.ts';
import { normalizeGitHub } from '../../services/ingest/registries/github.ts';
import { normalizeHarbor } from '../../services/ingest/registries/harbor.ts';
import { normalizeQuay } from '../../services/ingest/registries/quay.ts';
import { parseManifest } from '../../services/core/oci/media-types.ts';
import { COSIGN_ANNOTATION } from '../../services/core/verification/cosign-layer.ts';
import { loadTrustedRoot } from '../../services/core/verification/trust.ts';
import { createSignatureVerifier, type SignatureVerifier } from '../../services/core/verification/verifier.ts';
import { fixturePath, readFixture } from '../helpers/fixtures.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const settings = { numRuns: RUNS, interruptAfterTimeLimit: 20_000 };

/** Runs `fn`; an exception that is not Signet's own typed error fails the property. */
function typedOutcome<T>(fn: () => T, ...allowed: (abstract new (...args: never[]) => Error)[]): T | null {
  try {
    return fn();
  } catch (err) {
    if (allowed.some((E) => err instanceof E)) {
      return null;
    }
    throw err;
  }
}

// ---- webhook payloads -------------------------------------------------------------------------

const ctx: NormalizeContext = { registry: null, deliveryId: 'delivery-1', bodyHash: 'a'.repeat(64), receivedAt: '2026-11-22T00:00:00.000Z' };
const NORMALIZERS: Record<string, (body: unknown) => NormalizedDelivery> = {
  distribution: (b) => normalizeDistribution(b, ctx),
  harbor: (b) => normalizeHarbor(b, ctx),
  dockerhub: (b) => normalizeDockerHub(b, ctx),
  github: (b) => normalizeGitHub(b, ctx, 'package'),
  quay: (b) => normalizeQuay(b, ctx),
  acr: (b) => normalizeAcr(b, ctx),
  ecr: (b) => normalizeEcr(b, ctx),
  gar: (b) => normalizeGar(b, ctx),
};
const FIXTURE_DIRS: Record<string, string> = {
  distribution: 'distribution',
  harbor: 'harbor',
  dockerhub: 'dockerhub',
  github: 'github',
  quay: 'quay',
  acr: 'azure-acr',
  ecr: 'aws-ecr',
};

function jsonFixtures(dir: string): unknown[] {
  return readdirSync(fixturePath(`webhooks/${dir}`))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFixture(`webhooks/${dir}/${f}`).toString('utf8')) as unknown);
}

/** Replaces the n-th leaf (in a depth-first walk) of a JSON document. */
function replaceLeaf(doc: unknown, n: number, value: unknown): unknown {
  let i = 0;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      return v.map(walk);
    }
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return i++ === n ? value : v;
  };
  return walk(doc);
}

/** Every event a normaliser emits is well-formed: valid host, repository and digest. */
function assertWellFormed(d: NormalizedDelivery): void {
  for (const e of d.events) {
    expect(isRegistryHost(e.registry), e.registry).toBe(true);
    expect(isRepositoryName(e.repository), e.repository).toBe(true);
    if (e.kind === 'push') {
      expect(isDigest(e.digest)).toBe(true);
    }
    if (e.kind === 'delete' && e.digest !== null) {
      expect(isDigest(e.digest)).toBe(true);
    }
  }
}

describe('webhook normalisers', () => {
  for (const [source, normalize] of Object.entries(NORMALIZERS)) {
    it(`${source}: any JSON value ends in a delivery of well-formed events or a typed error`, () => {
      fc.assert(
        fc.property(fc.jsonValue(), (body) => {
          const d = typedOutcome(() => normalize(body), AppError);
          if (d !== null) {
            assertWellFormed(d);
          }
        }),
        settings,
      );
    });

    const dir = FIXTURE_DIRS[source];
    if (dir !== undefined) {
      it(`${source}: its published payloads with leaves replaced by arbitrary values`, () => {
        const fixtures = jsonFixtures(dir);
        fc.assert(
          fc.property(
            fc.constantFrom(...fixtures),
            fc.array(fc.tuple(fc.nat(200), fc.oneof(fc.jsonValue(), fc.string(), fc.constant('../../etc'), fc.constant('sha256:'.padEnd(71, 'g')))), {
              maxLength: 4,
            }),
            (fixture, edits) => {
              const body = edits.reduce((doc, [n, v]) => replaceLeaf(doc, n, v), fixture);
              const d = typedOutcome(() => normalize(body), AppError);
              if (d !== null) {
                assertWellFormed(d);
              }
            },
          ),
          settings,
        );
      });
    }
  }
});

// ---- image references -------------------------------------------------------------------------

const refChars = fc.constantFrom(...'abcz019._-/:@ABZ'.split(''), 'sha256:', `sha256:${'a'.repeat(64)}`, 'localhost', 'docker.io', ' ', '\u0000', '%2F');

describe('parseImageReference', () => {
  it('any string is a normalised reference that re-parses to itself, or ImageReferenceError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.array(refChars, { maxLength: 40 }).map((a) => a.join(''))), (s) => {
        const ref = typedOutcome(() => parseImageReference(s), ImageReferenceError);
        if (ref === null) {
          return;
        }
        expect(isRegistryHost(ref.registry)).toBe(true);
        expect(isRepositoryName(ref.repository)).toBe(true);
        expect(ref.digest === null || isDigest(ref.digest)).toBe(true);
        expect(parseImageReference(formatImageReference(ref))).toEqual(ref);
      }),
      settings,
    );
  });
});

// ---- manifests --------------------------------------------------------------------------------

const mediaTypes = fc.constantFrom(
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'text/html',
  '',
);
const descriptor = fc.record(
  {
    mediaType: fc.oneof(mediaTypes, fc.string()),
    digest: fc.oneof(fc.constant(sha256Digest('x')), fc.string(), fc.constant(`sha512:${'a'.repeat(128)}`)),
    size: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.string()),
    platform: fc.record({ os: fc.string(), architecture: fc.string() }, { requiredKeys: [] }),
    annotations: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())),
  },
  { requiredKeys: [] },
);
const manifestDoc = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(2), fc.constant(1), fc.integer()),
    mediaType: fc.oneof(mediaTypes, fc.string()),
    config: descriptor,
    layers: fc.array(descriptor, { maxLength: 5 }),
    manifests: fc.array(descriptor, { maxLength: 5 }),
  },
  { requiredKeys: [] },
);

describe('parseManifest', () => {
  it('any bytes or manifest-shaped document parse, or fail as a typed INVALID', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }),
          manifestDoc.map((d) => new TextEncoder().encode(JSON.stringify(d))),
          fc.jsonValue().map((d) => new TextEncoder().encode(JSON.stringify(d))),
        ),
        fc.oneof(mediaTypes, fc.constant(null)),
        (bytes, mediaType) => {
          const m = typedOutcome(() => parseManifest(bytes, mediaType), AppError);
          if (m === null) {
            return;
          }
          const descriptors = m.kind === 'image' ? [m.config, ...m.layers] : m.manifests;
          for (const d of descriptors) {
            expect(isDigest(d.digest)).toBe(true);
          }
        },
      ),
      settings,
    );
  });
});

// ---- policies ---------------------------------------------------------------------------------

const policyDoc = fc.record(
  {
    allow_with_verification: fc.dictionary(
      fc.oneof(fc.constant('registry.example.com'), fc.string()),
      fc.dictionary(
        fc.oneof(fc.constant('team/*'), fc.constant('**'), fc.string()),
        fc.record(
          {
            'certificate-identity': fc.oneof(fc.string(), fc.constant('alice@example.com')),
            'certificate-identity-regexp': fc.oneof(fc.string(), fc.constant('.*'), fc.constant('(a+)+$')),
            'certificate-oidc-issuer': fc.string(),
            key: fc.string(),
            'insecure-ignore-tlog': fc.boolean(),
            threshold: fc.integer(),
          },
          { requiredKeys: [] },
        ),
      ),
    ),
    allow_without_verification: fc.dictionary(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
  },
  { requiredKeys: [] },
);

describe('parsePolicy', () => {
  it('any text or policy-shaped document is a policy or a PolicyConfigError — and never accepts any identity', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 400 }), policyDoc.map((d) => JSON.stringify(d)), fc.jsonValue().map((d) => JSON.stringify(d))), (text) => {
        const policy = typedOutcome(() => parsePolicy(text), PolicyConfigError);
        if (policy === null) {
          return;
        }
        for (const rules of policy.withVerification.values()) {
          for (const r of rules) {
            // A keyless rule names who may sign: a regexp accepting anyone is refused.
            if (r.kind === 'keyless' && 'regexp' in r.identity) {
              const { regexp } = r.identity;
              expect(ANY_IDENTITY_PROBES.every((probe) => regexp.test(probe))).toBe(false);
            }
          }
        }
      }),
      settings,
    );
  });
});

// ---- signature layers -------------------------------------------------------------------------

let verifier: SignatureVerifier;
beforeAll(async () => {
  verifier = createSignatureVerifier(await loadTrustedRoot(DEFAULT_TRUSTED_ROOTS[0]!), []);
});

const realLayer = () =>
  JSON.parse(readFixture('cosign/connaisseur-testimage/manifests/sha256-31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee.sig.json').toString('utf8')) as {
    layers: { digest: string; annotations: Record<string, string> }[];
  };

describe('verifyCosignLayer', () => {
  it('never throws and never verifies junk: arbitrary payloads and annotations', () => {
    const annotationValue = fc.oneof(fc.string(), fc.base64String(), fc.constant('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'), fc.jsonValue().map((v) => JSON.stringify(v)));
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.record(
          {
            [COSIGN_ANNOTATION.signature]: annotationValue,
            [COSIGN_ANNOTATION.certificate]: annotationValue,
            [COSIGN_ANNOTATION.chain]: annotationValue,
            [COSIGN_ANNOTATION.bundle]: annotationValue,
          },
          { requiredKeys: [] },
        ),
        (payload, annotations) => {
          const v = verifier.verifyCosignLayer({ payload: Buffer.from(payload), annotations: annotations }, sha256Digest('subject'));
          expect(v.outcome).not.toBe('verified');
        },
      ),
      settings,
    );
  });

  it('a real keyless signature with one byte changed never verifies anything it did not say before', () => {
    const sig = realLayer();
    const layer = sig.layers[0]!;
    const payload = readFixture(`cosign/connaisseur-testimage/blobs/${layer.digest.replace(':', '-')}.json`);
    const subject = 'sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee' as Parameters<SignatureVerifier['verifyCosignLayer']>[1];
    const original = verifier.verifyCosignLayer({ payload, annotations: layer.annotations }, subject);
    expect(original.outcome).toBe('verified');
    const facts = (v: typeof original) => ({ identity: v.identity, certificate: v.certificate, rekor: v.rekor, claims: v.claims, annotations: v.annotations });
    const keys = Object.keys(layer.annotations);
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (which, at, xor, inPayload) => {
        let p = payload;
        const a = { ...layer.annotations };
        if (inPayload) {
          p = Buffer.from(payload);
          const i = at % p.length;
          p[i] = p[i]! ^ xor;
        } else {
          const k = keys[which % keys.length]!;
          const chars = [...a[k]!];
          const i = at % chars.length;
          chars[i] = String.fromCharCode((chars[i]!.charCodeAt(0) ^ xor) || 1);
          a[k] = chars.join('');
          if (a[k] === layer.annotations[k]) {
            return;
          }
        }
        // Changed signed bytes never verify. What still verifies (the chain annotation, which
        // verification never trusts: the chain comes from the trusted root; an equivalent PEM)
        // must say exactly what the original said.
        const v = verifier.verifyCosignLayer({ payload: p, annotations: a }, subject);
        if (inPayload) {
          expect(v.outcome).not.toBe('verified');
        } else if (v.outcome === 'verified') {
          expect(facts(v)).toEqual(facts(original));
        }
      }),
      settings,
    );
  });
});
