// Every signature format end to end through a real docker-registry (distribution 2.8, which has no
// referrers API, so Sigstore bundles travel by the referrers tag schema): cosign v3 bundles, GitHub
// style SLSA provenance bundles, cosign `.att` attestations, legacy `.sig` signatures, multi-arch
// indexes with children signed apart, and a replayed attestation. The ledger is read directly.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignSignatureTag, type Digest } from '../../services/common/domain/digest.ts';
import { COSIGN_SIGN_PREDICATE } from '../../services/common/domain/signature.ts';
import { createLogger } from '../../services/common/logger.ts';
import { discoverSignatures, type DiscoverySubject } from '../../services/core/discovery.ts';
import { createRegistryClient, type RegistryClientOptions } from '../../services/core/oci/client.ts';
import { SLSA_V02, SLSA_V1 } from '../../services/core/verification/bundle.ts';
import { loadTrustedRoots } from '../../services/core/verification/trust.ts';
import { createSignatureVerifier } from '../../services/core/verification/verifier.ts';
import { pushBundleReferrer, pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { OCI_INDEX, OCI_MANIFEST, pushBlob, pushIndex, pushManifest, pushRandomImage } from '../helpers/oci-push.ts';
import { startReferrersShim, type ReferrersShim } from '../helpers/referrers-shim.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { inTotoStatement, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const BUILDER = { uri: 'https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1', issuer: 'https://token.actions.githubusercontent.com' };

const slsaV1 = {
  buildDefinition: {
    buildType: 'https://actions.github.io/buildtypes/workflow/v1',
    externalParameters: { workflow: { ref: 'refs/tags/v1', repository: 'https://github.com/org/app', path: '.github/workflows/release.yml' } },
    resolvedDependencies: [{ uri: 'git+https://github.com/org/app@refs/tags/v1', digest: { gitCommit: 'b'.repeat(40) } }],
  },
  runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } },
};
const slsaV02 = {
  builder: { id: 'https://cloudbuild.googleapis.com/GoogleHostedWorker' },
  invocation: { configSource: { uri: 'git+https://source.developers.google.com/p/proj/r/app@refs/heads/main', digest: { sha1: 'c'.repeat(40) } } },
};

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let tmp: string;
let stack: TestStack;
let shim: ReferrersShim;

/**
 * A discovery outside Signet's worker: the real registry client (its methods may be wrapped to
 * list what it asks; `opts` over the defaults) and a verifier of the test trust root.
 */
async function discoveryWith(opts: Partial<RegistryClientOptions> = {}) {
  const client = createRegistryClient({ insecureHosts: [registry.host, shim.host], timeoutMs: 5000, retries: 0, maxManifestBytes: 4 << 20, log: createLogger({ logLevel: 'silent' }), ...opts });
  const verifier = createSignatureVerifier(await loadTrustedRoots([join(tmp, 'trusted_root.json')]), []);
  const discover = (subject: DiscoverySubject, pushed?: Parameters<typeof discoverSignatures>[3]) =>
    discoverSignatures({ registry: client, verifier, maxPayloadBytes: 1 << 18 }, subject, createLogger({ logLevel: 'silent' }), pushed);
  return { client, discover };
}

beforeAll(async () => {
  stack = await startTestStack({
    name: 'formats',
    policy: (host) => policyAllowing(host, ALICE),
    // Signet reaches the registry through a shim that can add the referrers API (off until the last tests).
    env: async ({ host, port }) => {
      shim = await startReferrersShim(`http://127.0.0.1:${port}`);
      return { SIGNET_REGISTRY_ENDPOINTS: `${host}=${shim.url}` };
    },
  });
  ({ db, sigstore, registry, signet, tmp } = stack);
});

afterAll(async () => {
  await shim?.close();
  await stack?.stop();
});

function rowsOf(repo: string, digest: Digest) {
  return db.db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select([
      's.format',
      's.kind',
      's.outcome',
      's.reason',
      's.subject',
      's.issuer',
      's.identity_id',
      's.predicate_type',
      's.claims',
      's.rekor_log_index',
      's.rekor_log_id',
      's.rekor_integrated_time',
      'm.status',
      'm.signature_count',
      'm.attestation_count',
    ])
    .where('r.name', '=', repo)
    .where('m.digest', '=', digest)
    .orderBy('s.id')
    .execute();
}

/** Waits until `digest` has `n` signature/attestation rows and returns them. */
function rows(repo: string, digest: Digest, n: number) {
  return eventually(async () => {
    const r = await rowsOf(repo, digest);
    return r.length >= n ? r : undefined;
  }, `${repo}@${digest} has ${n} signature rows`);
}

async function decision(repo: string, digest: Digest): Promise<{ allowed: boolean; reason: string }> {
  const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`${registry.host}/${repo}@${digest}`)}` });
  return res.json();
}

const subjectOf = (img: { digest: Digest; bytes: Buffer }, mediaType = OCI_MANIFEST) => ({ digest: img.digest, mediaType, size: img.bytes.length });

describe('formats through a real registry (referrers tag schema, .att, .sig)', () => {
  it('a cosign v3 signature bundle is found through the referrers tag, verified, and allows the image', async () => {
    const repo = 'v3/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    const bundle = await sigstore.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE);
    await pushBundleReferrer(registry.url, repo, subjectOf(image), bundle, COSIGN_SIGN_PREDICATE);
    const [sig] = await rows(repo, image.digest, 1);
    expect(sig).toMatchObject({
      format: 'sigstore_bundle',
      kind: 'signature',
      outcome: 'verified',
      subject: ALICE.email,
      issuer: ALICE.issuer,
      predicate_type: COSIGN_SIGN_PREDICATE,
      status: 'verified',
    });
    expect(sig!.identity_id).not.toBeNull();
    expect(sig!.rekor_log_index).toMatch(/^\d+$/);
    expect(sig!.rekor_integrated_time).toBeInstanceOf(Date);
    await eventually(async () => ((await decision(repo, image.digest)).allowed ? true : undefined), 'the image is allowed');

    // The job that found it may have been the referrer push's own (re-targeted at its subject). A
    // plain discovery of the image, with nothing pushed to go on, finds it through the referrers
    // tag (distribution 2.8 answers the referrers API with 404).
    const { discover } = await discoveryWith();
    const found = await discover({ registry: registry.host, repository: repo, digest: image.digest });
    expect(found.discoveryError).toBeNull();
    expect(found.signatures.map((x) => [x.format, x.verdict.outcome])).toEqual([['sigstore_bundle', 'verified']]);
  });

  it('GitHub-style SLSA v1 provenance (bundle referrer) and a cosign .att SLSA v0.2 attestation are recorded with their claims, and do not count as signatures', async () => {
    const repo = 'attested/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    const provenance = await sigstore.signDsseBundle(inTotoStatement(image.digest, SLSA_V1, slsaV1), BUILDER);
    await pushBundleReferrer(registry.url, repo, subjectOf(image), provenance, SLSA_V1);
    await pushCosignAttestations(registry.url, repo, image.digest, [await sigstore.attestKeyless(inTotoStatement(image.digest, SLSA_V02, slsaV02), ALICE)]);
    const found = await rows(repo, image.digest, 2);
    const bundle = found.find((r) => r.format === 'sigstore_bundle')!;
    const att = found.find((r) => r.format === 'cosign_attestation')!;
    expect(bundle).toMatchObject({ kind: 'attestation', outcome: 'verified', predicate_type: SLSA_V1, subject: BUILDER.uri, identity_id: null });
    expect(bundle.claims).toMatchObject({
      issuer: BUILDER.issuer,
      slsaBuilderId: 'https://github.com/actions/runner/github-hosted',
      slsaSourceRepository: 'https://github.com/org/app',
      slsaSourceRef: 'refs/tags/v1',
      slsaSourceDigest: `gitCommit:${'b'.repeat(40)}`,
    });
    expect(att).toMatchObject({ kind: 'attestation', outcome: 'verified', predicate_type: SLSA_V02, subject: ALICE.email, identity_id: null });
    expect(att.claims).toMatchObject({ slsaBuilderId: slsaV02.builder.id, slsaSourceDigest: `sha1:${'c'.repeat(40)}` });
    expect(att.rekor_log_index).toMatch(/^\d+$/);
    // Attestations alone sign nothing: the image stays unsigned and denied, even by alice's attestation.
    expect(found[0]).toMatchObject({ status: 'unsigned', signature_count: 0, attestation_count: 2 });
    expect(await decision(repo, image.digest)).toMatchObject({ allowed: false });
    // Attesters are not owners.
    const owners = await db.db.selectFrom('ownership_changes as o').innerJoin('repositories as r', 'r.id', 'o.repository_id').select('o.id').where('r.name', '=', repo).execute();
    expect(owners).toEqual([]);
  });

  it('an attestation replayed from another image is recorded as digest_mismatch, never verified', async () => {
    const repo = 'replay/app';
    const [image, other] = [await pushRandomImage(registry.url, repo, 'v1'), await pushRandomImage(registry.url, repo, 'v2')];
    await pushCosignAttestations(registry.url, repo, image.digest, [await sigstore.attestKeyless(inTotoStatement(other.digest, SLSA_V1, slsaV1), ALICE)]);
    const stolen = await sigstore.signDsseBundle(inTotoStatement(other.digest, COSIGN_SIGN_PREDICATE, {}), ALICE);
    await pushBundleReferrer(registry.url, repo, subjectOf(image), stolen, COSIGN_SIGN_PREDICATE);
    const found = await rows(repo, image.digest, 2);
    expect(found.map((r) => [r.format, r.outcome])).toEqual(
      expect.arrayContaining([
        ['cosign_attestation', 'digest_mismatch'],
        ['sigstore_bundle', 'digest_mismatch'],
      ]),
    );
    for (const r of found) {
      expect(r.reason).toContain(other.digest);
      expect(r.identity_id).toBeNull();
    }
    expect(await decision(repo, image.digest)).toMatchObject({ allowed: false });
  });

  it('a multi-arch index: the index signed with a v3 bundle, each child with legacy .sig or a message-signature bundle', async () => {
    const repo = 'multi/app';
    const index = await pushIndex(registry.url, repo, 'v1');
    const [amd64, arm64] = index.images;
    await pushBundleReferrer(
      registry.url,
      repo,
      subjectOf(index, OCI_INDEX),
      await sigstore.signDsseBundle(inTotoStatement(index.digest, COSIGN_SIGN_PREDICATE, {}), ALICE),
      COSIGN_SIGN_PREDICATE,
    );
    await pushCosignSignatures(registry.url, repo, amd64!.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, amd64!.digest), ALICE)]);
    await pushBundleReferrer(registry.url, repo, subjectOf(arm64!), await sigstore.signMessageBundle(arm64!.bytes, ALICE), null);
    const [top] = await rows(repo, index.digest, 1);
    const [a] = await rows(repo, amd64!.digest, 1);
    const [b] = await rows(repo, arm64!.digest, 1);
    expect(top).toMatchObject({ format: 'sigstore_bundle', outcome: 'verified', predicate_type: COSIGN_SIGN_PREDICATE });
    expect(a).toMatchObject({ format: 'cosign_legacy', outcome: 'verified' });
    expect(b).toMatchObject({ format: 'sigstore_bundle', outcome: 'verified', predicate_type: null, kind: 'signature' });
    for (const digest of [index.digest, amd64!.digest, arm64!.digest]) {
      await eventually(async () => ((await decision(repo, digest)).allowed ? true : undefined), `${digest} allowed`);
    }
  });

  it('a pushed .sig is read from the registry once: its tag, its digest and the tag again come from that one read', async () => {
    const repo = 'once/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    const signature = await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), ALICE)]);
    const { client, discover } = await discoveryWith();
    // The real client, its manifest reads listed.
    const reads: string[] = [];
    const getManifest = client.getManifest.bind(client);
    client.getManifest = (r, repository, reference) => {
      reads.push(reference);
      return getManifest(r, repository, reference);
    };
    const tag = cosignSignatureTag(image.digest);
    const found = await discover({ registry: registry.host, repository: repo, digest: image.digest }, { digest: signature, tag });
    expect(found.signatures.map((x) => [x.format, x.verdict.outcome])).toEqual([['cosign_legacy', 'verified']]);
    expect(found.sources).toMatchObject({ listed: [signature], pushed: [], complete: true });
    expect(reads.filter((r) => r === tag || r === signature)).toEqual([tag]);
    expect(new Set(reads).size).toBe(reads.length);
  });

  it('a registry that answers the referrers API with 404 is not asked again for that repository until the recheck time has passed', async () => {
    const repo = 'noapi/app';
    const images = [await pushRandomImage(registry.url, repo, 'v1'), await pushRandomImage(registry.url, repo, 'v2'), await pushRandomImage(registry.url, 'noapi/other', 'v1')];
    const { client, discover: discoverSubject } = await discoveryWith({ referrersApiRecheckMs: 500 });
    // The real client, its referrers API requests and referrers-tag reads listed.
    const asked: string[] = [];
    const listPage = client.listPage.bind(client);
    client.listPage = (r, repository, path) => {
      asked.push(`${repository} api`);
      return listPage(r, repository, path);
    };
    const getManifest = client.getManifest.bind(client);
    client.getManifest = (r, repository, reference) => {
      if (/^sha256-[0-9a-f]{64}$/.test(reference)) {
        asked.push(`${repository} tag`);
      }
      return getManifest(r, repository, reference);
    };
    const discover = (image: { digest: Digest }, repository: string) => discoverSubject({ registry: registry.host, repository, digest: image.digest });
    // distribution 2.8 has no referrers API: the first look asks (404), the next one in the repository does not.
    await discover(images[0]!, repo);
    await discover(images[1]!, repo);
    // Another repository asks for itself.
    await discover(images[2]!, 'noapi/other');
    expect(asked).toEqual([`${repo} api`, `${repo} tag`, `${repo} tag`, 'noapi/other api', 'noapi/other tag']);
    // The 404 is forgotten after the recheck time: a registry upgraded meanwhile is asked again.
    await new Promise((r) => setTimeout(r, 600));
    await discover(images[1]!, repo);
    expect(asked.slice(5)).toEqual([`${repo} api`, `${repo} tag`]);
  });

  it('a referrer that names another image as its subject is not taken for this one', async () => {
    const repo = 'misfiled/app';
    const [image, other] = [await pushRandomImage(registry.url, repo, 'v1'), await pushRandomImage(registry.url, repo, 'v2')];
    // A bundle for `other`, listed in `image`'s referrers tag (a broken or hostile registry).
    const bundle = await sigstore.signDsseBundle(inTotoStatement(other.digest, COSIGN_SIGN_PREDICATE, {}), ALICE);
    const referrer = await pushBundleReferrer(registry.url, repo, subjectOf(other), bundle, COSIGN_SIGN_PREDICATE);
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: referrer, size: 1, artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }] };
    await pushManifest(registry.url, repo, `sha256-${image.digest.slice(7)}`, Buffer.from(JSON.stringify(index)), OCI_INDEX);
    const m = await eventually(async () => {
      const row = await db.db
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['m.status', 'm.status_reason', 'm.signature_count'])
        .where('r.name', '=', repo)
        .where('m.digest', '=', image.digest)
        .executeTakeFirst();
      return row?.status === 'malformed' ? row : undefined;
    }, 'image marked malformed');
    expect(m.status_reason).toContain(`names ${other.digest} as its subject`);
    expect(m.signature_count).toBe(0);
  });
});

describe('the verification cache', () => {
  it('re-pushing signed images to another repository (a promotion) verifies nothing again', async () => {
    const images = [];
    for (let i = 0; i < 4; i++) {
      const image = await pushRandomImage(registry.url, 'stage/app', `v${i}`);
      const sig = await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/stage/app`, image.digest), ALICE);
      const bundle = await sigstore.signDsseBundle(inTotoStatement(image.digest, SLSA_V1, slsaV1), BUILDER);
      await pushCosignSignatures(registry.url, 'stage/app', image.digest, [sig]);
      await pushBundleReferrer(registry.url, 'stage/app', subjectOf(image), bundle, SLSA_V1);
      images.push({ image, sig, bundle });
    }
    for (const { image } of images) {
      await rows('stage/app', image.digest, 2);
    }
    const before = signet.verificationCache()!;
    for (const { image, sig, bundle } of images) {
      await pushBlob(registry.url, 'prod/app', image.config.bytes);
      await pushBlob(registry.url, 'prod/app', image.layer.bytes);
      await pushManifest(registry.url, 'prod/app', 'latest', image.bytes, OCI_MANIFEST);
      await pushCosignSignatures(registry.url, 'prod/app', image.digest, [sig]);
      await pushBundleReferrer(registry.url, 'prod/app', subjectOf(image), bundle, SLSA_V1);
    }
    for (const { image } of images) {
      const promoted = await rows('prod/app', image.digest, 2);
      expect(promoted.map((r) => r.outcome)).toEqual(['verified', 'verified']);
    }
    const after = signet.verificationCache()!;
    const hits = after.hits - before.hits;
    const misses = after.misses - before.misses;
    // Every signature of the promoted images (8) was looked up at least once; none was verified again.
    expect(hits).toBeGreaterThanOrEqual(8);
    expect(misses).toBe(0);
    console.log(`verification cache on a promotion re-push: ${hits} hits, ${misses} misses (hit rate ${(hits / (hits + misses)).toFixed(2)})`);
  });
});

describe('a registry with the OCI 1.1 referrers API', () => {
  beforeAll(() => shim.setApi(true));
  afterAll(() => shim.setApi(false));

  it('bundles are found through the API (the fallback tag is never read) and verified', async () => {
    const repo = 'api/app';
    // Jobs of the tests before (which may have asked for a fallback tag with the API still off) are done.
    await eventually(async () => (Object.values(await signet.queue!.getJobCounts('waiting', 'active', 'delayed')).every((n) => n === 0) ? true : undefined), 'an idle queue');
    const before = { ...shim.counts };
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushBundleReferrer(registry.url, repo, subjectOf(image), await sigstore.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE), COSIGN_SIGN_PREDICATE);
    await pushBundleReferrer(registry.url, repo, subjectOf(image), await sigstore.signDsseBundle(inTotoStatement(image.digest, SLSA_V1, slsaV1), BUILDER), SLSA_V1);
    const found = await rows(repo, image.digest, 2);
    expect(found.map((r) => [r.kind, r.outcome, r.predicate_type]).sort()).toEqual([
      ['attestation', 'verified', SLSA_V1],
      ['signature', 'verified', COSIGN_SIGN_PREDICATE],
    ]);
    expect(shim.counts.api).toBeGreaterThan(before.api);
    // Referrers-tag pushes notify Signet, whose jobs fetch that index by digest; by name, never.
    await eventually(async () => ((await decision(repo, image.digest)).allowed ? true : undefined), 'the image is allowed');
    expect(shim.counts.hiddenTags).toBe(before.hiddenTags);
  });

  it('a registry that has the API is asked for every image: only a 404 is remembered', async () => {
    const repo = 'api/again';
    const { client, discover } = await discoveryWith();
    // This client's own requests (Signet's worker indexes the same pushes through the shim).
    let asked = 0;
    const listPage = client.listPage.bind(client);
    client.listPage = (r, repository, path) => {
      asked++;
      return listPage(r, repository, path);
    };
    for (const tag of ['v1', 'v2']) {
      const image = await pushRandomImage(registry.url, repo, tag);
      await pushBundleReferrer(registry.url, repo, subjectOf(image), await sigstore.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE), COSIGN_SIGN_PREDICATE);
      const found = await discover({ registry: shim.host, repository: repo, digest: image.digest });
      expect(found.signatures.map((x) => [x.format, x.verdict.outcome])).toEqual([['sigstore_bundle', 'verified']]);
    }
    expect(asked).toBe(2);
    expect(client.lacksReferrersApi(shim.host, repo)).toBe(false);
  });
});

describe('GraphQL over every format', () => {
  async function query(q: string, variables: Record<string, unknown>): Promise<any> {
    const res = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query: q, variables } });
    const body = res.json<{ data?: unknown; errors?: unknown[] }>();
    expect(body.errors).toBeUndefined();
    return body.data;
  }

  it('shows signatures and attestations apart, with format, predicate type, claims and Rekor coordinates; finds them by claim', async () => {
    const repo = 'graphql/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushBundleReferrer(registry.url, repo, subjectOf(image), await sigstore.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE), COSIGN_SIGN_PREDICATE);
    await pushBundleReferrer(registry.url, repo, subjectOf(image), await sigstore.signDsseBundle(inTotoStatement(image.digest, SLSA_V1, slsaV1), BUILDER), SLSA_V1);
    await rows(repo, image.digest, 2);
    const fields = 'format kind predicateType verified rekorLogIndex integratedTime identity { subject issuer } claims { name oid value }';
    const d = await query(`query($ref: String!) { image(ref: $ref) { status owners { subject } signatures { ${fields} } attestations { ${fields} } } }`, {
      ref: `${registry.host}/${repo}@${image.digest}`,
    });
    expect(d.image.status).toBe('VERIFIED');
    expect(d.image.owners).toEqual([{ subject: ALICE.email }]);
    expect(d.image.signatures).toEqual([
      expect.objectContaining({ format: 'SIGSTORE_BUNDLE', kind: 'SIGNATURE', predicateType: COSIGN_SIGN_PREDICATE, verified: true, identity: { subject: ALICE.email, issuer: ALICE.issuer } }),
    ]);
    const [att] = d.image.attestations;
    expect(att).toMatchObject({ format: 'SIGSTORE_BUNDLE', kind: 'ATTESTATION', predicateType: SLSA_V1, verified: true, identity: { subject: BUILDER.uri } });
    expect(att.rekorLogIndex).toMatch(/^\d+$/);
    expect(att.claims).toEqual(
      expect.arrayContaining([
        { name: 'issuer', oid: '1.3.6.1.4.1.57264.1.8', value: BUILDER.issuer },
        { name: 'slsaSourceRepository', oid: null, value: 'https://github.com/org/app' },
      ]),
    );

    const byClaim = await query(
      `query($v: String!) { signaturesWithClaim(name: "slsaSourceRepository", value: $v, first: 100) { totalCount nodes { kind image { reference } } } }`,
      { v: 'https://github.com/org/app' },
    );
    expect(byClaim.signaturesWithClaim.nodes).toEqual(expect.arrayContaining([{ kind: 'ATTESTATION', image: { reference: `${registry.host}/${repo}@${image.digest}` } }]));
    expect(byClaim.signaturesWithClaim.totalCount).toBeGreaterThanOrEqual(1);
  });
});
