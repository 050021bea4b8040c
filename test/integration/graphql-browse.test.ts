// Browsing the ledger over GraphQL: registries and repositories by prefix, images filtered by
// status, decision and attestation at registry, repository and identity level, the deliveries
// naming a digest, a tag at a past time, decision history and denials in pages. Every row was
// indexed by Signet from pushes to a real docker-registry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLSA_V1 } from '../../services/core/verification/bundle.ts';
import { pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import { eventually } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { inTotoStatement, simpleSigningPayload, type KeylessIdentity } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const BOB = { email: 'bob@example.com', issuer: 'https://accounts.example.com' };

let stack: TestStack;
let host: string;
const img: Record<'v1' | 'v2' | 'v1b' | 'api' | 'base', PushedImage> = {} as never;

interface GqlResult {
  data?: any;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql(query: string, variables: Record<string, unknown> = {}): Promise<GqlResult> {
  const res = await stack.signet.app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });
  return res.json<GqlResult>();
}

async function data(query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const r = await gql(query, variables);
  expect(r.errors).toBeUndefined();
  return r.data;
}

async function codes(query: string, variables: Record<string, unknown> = {}) {
  return (await gql(query, variables)).errors?.map((e) => [e.extensions?.code, e.message]);
}

/**
 * Waits for the image to be in the ledger: images are listed newest first, and jobs run
 * concurrently, so the next push waits until this one is recorded.
 */
async function recorded(image: PushedImage): Promise<PushedImage> {
  await eventually(async () => ((await stack.db.db.selectFrom('manifests').select('id').where('digest', '=', image.digest).executeTakeFirst()) !== undefined ? true : undefined), `${image.digest} recorded`);
  return image;
}

async function signed(repo: string, tag: string, who: KeylessIdentity): Promise<PushedImage> {
  const image = await pushRandomImage(stack.registry.url, repo, tag);
  await pushCosignSignatures(stack.registry.url, repo, image.digest, [await stack.sigstore.signKeyless(simpleSigningPayload(`${host}/${repo}`, image.digest), who)]);
  return recorded(image);
}

const digests = (conn: { nodes: { digest: string }[] }) => conn.nodes.map((n) => n.digest);

beforeAll(async () => {
  stack = await startTestStack({ name: 'browse', policy: (h) => policyAllowing(h, ALICE, 'app/*') });
  host = stack.host;
  // app/web: v1 signed by alice with an SLSA provenance attestation, v2 signed by alice, then v1
  // moved to an image bob signed (denied: bob is not in the policy); app/api: unsigned; lib/base:
  // signed by bob (not covered by the policy).
  img.v1 = await signed('app/web', 'v1', ALICE);
  await pushCosignAttestations(stack.registry.url, 'app/web', img.v1.digest, [
    await stack.sigstore.attestKeyless(inTotoStatement(img.v1.digest, SLSA_V1, { buildDefinition: { buildType: 'https://example.com/build' }, runDetails: { builder: { id: 'https://example.com/builder' } } }), ALICE),
  ]);
  img.v2 = await signed('app/web', 'v2', ALICE);
  img.api = await recorded(await pushRandomImage(stack.registry.url, 'app/api', '1'));
  img.base = await signed('lib/base', '1', BOB);
  await eventually(async () => {
    const d = await data(`query($r: String!) { image(ref: $r) { attestations { status } } }`, { r: `${host}/app/web@${img.v1.digest}` });
    return d.image?.attestations.length === 1 ? true : undefined;
  }, 'v1 and its attestation indexed');
  img.v1b = await signed('app/web', 'v1', BOB);
  await eventually(async () => {
    const rows = await stack.db.db.selectFrom('decisions').select('manifest_id').execute();
    const sigs = await stack.db.db.selectFrom('signatures').select('id').execute();
    return rows.length === 5 && sigs.length === 5 ? true : undefined;
  }, 'five images decided, four signatures and an attestation recorded');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('GraphQL: browsing the ledger', () => {
  it('lists registries and repositories by prefix, in byte order and in pages; LIKE wildcards are literal', async () => {
    const { registries } = await data(`query($s: String!) { registries(search: $s) { totalCount nodes { host } } }`, { s: host.slice(0, 4) });
    expect(registries).toEqual({ totalCount: 1, nodes: [{ host }] });
    expect((await data(`{ registries(search: "nowhere.example") { totalCount nodes { host } } }`)).registries).toEqual({ totalCount: 0, nodes: [] });

    const q = `query($g: String, $s: String, $after: String) { repositories(registry: $g, search: $s, first: 1, after: $after) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor } nodes { registry name } } }`;
    const first = (await data(q, { g: host, s: 'app/' })).repositories;
    expect(first).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true, hasPreviousPage: false }, nodes: [{ registry: host, name: 'app/api' }] });
    const second = (await data(q, { g: host, s: 'app/', after: first.pageInfo.endCursor })).repositories;
    expect(second).toMatchObject({ pageInfo: { hasNextPage: false, hasPreviousPage: true }, nodes: [{ name: 'app/web' }] });
    // Across registries, and through the registry itself.
    expect((await data(`{ repositories(search: "lib/") { nodes { name } } }`)).repositories.nodes).toEqual([{ name: 'lib/base' }]);
    const { registry } = await data(`query($g: String!) { registry(host: $g) { repositories(first: 10) { nodes { name } } } }`, { g: host });
    expect(registry.repositories.nodes.map((n: any) => n.name)).toEqual(['app/api', 'app/web', 'lib/base']);
    // `%` and `_` are searched for, not wildcards.
    expect((await data(`{ repositories(search: "app%") { totalCount } }`)).repositories.totalCount).toBe(0);
    expect((await data(`{ repositories(search: "app_web") { totalCount } }`)).repositories.totalCount).toBe(0);
    expect(await codes(`{ repositories(search: "") { totalCount } }`)).toEqual([['BAD_USER_INPUT', 'search must be 1 to 255 characters']]);
  });

  it('finds identities by subject prefix, or exactly', async () => {
    expect((await data(`{ identities(search: "ali") { nodes { subject issuer kind } } }`)).identities.nodes).toEqual([{ subject: ALICE.email, issuer: ALICE.issuer, kind: 'EMAIL' }]);
    expect((await data(`{ identities(subject: "bob@example.com") { totalCount } }`)).identities.totalCount).toBe(1);
    expect((await data(`{ identities(search: "bob@example.co") { totalCount } }`)).identities.totalCount).toBe(1);
    expect(await codes(`{ identities(subject: "a", search: "a") { totalCount } }`)).toEqual([['BAD_USER_INPUT', 'identities: pass exactly one of subject and search']]);
    expect(await codes(`{ identities { totalCount } }`)).toEqual([['BAD_USER_INPUT', 'identities: pass exactly one of subject and search']]);
  });

  it('filters images by status, decision and attestation, at registry, repository and identity level', async () => {
    const q = `query($g: String!, $f: ImageFilter) { registry(host: $g) { images(first: 100, filter: $f) { totalCount nodes { digest } } } }`;
    const inRegistry = async (f: Record<string, unknown> | null) => (await data(q, { g: host, f })).registry.images;
    expect(digests(await inRegistry(null))).toEqual([img.v1b.digest, img.base.digest, img.api.digest, img.v2.digest, img.v1.digest]);
    expect(digests(await inRegistry({ status: ['UNSIGNED'] }))).toEqual([img.api.digest]);
    expect(digests(await inRegistry({ allowed: true }))).toEqual([img.v2.digest, img.v1.digest]);
    expect(digests(await inRegistry({ allowed: false }))).toEqual([img.v1b.digest, img.base.digest, img.api.digest]);
    expect(digests(await inRegistry({ decisionReason: ['UNSIGNED'] }))).toEqual([img.api.digest]);
    expect(digests(await inRegistry({ hasAttestation: true }))).toEqual([img.v1.digest]);
    expect(digests(await inRegistry({ attestationPredicateType: SLSA_V1 }))).toEqual([img.v1.digest]);
    expect(digests(await inRegistry({ attestationPredicateType: 'https://spdx.dev/Document' }))).toEqual([]);
    // All signed images lacking provenance: the question an auditor asks.
    const lacking = await inRegistry({ status: ['VERIFIED'], missingAttestationPredicateType: SLSA_V1 });
    expect(lacking).toEqual({ totalCount: 3, nodes: [{ digest: img.v1b.digest }, { digest: img.base.digest }, { digest: img.v2.digest }] });
    expect(await inRegistry({ status: [] })).toEqual({ totalCount: 0, nodes: [] });

    const { repository } = await data(
      `query($g: String!) { repository(registry: $g, name: "app/web") { images(filter: { hasAttestation: false }) { totalCount nodes { digest status } } } }`,
      { g: host },
    );
    expect(repository.images).toEqual({ totalCount: 2, nodes: [{ digest: img.v1b.digest, status: 'VERIFIED' }, { digest: img.v2.digest, status: 'VERIFIED' }] });
    const { identity } = await data(`{ identity(subject: "alice@example.com") { all: images { totalCount } attested: images(filter: { hasAttestation: true }) { nodes { digest } } } }`);
    expect(identity).toEqual({ all: { totalCount: 2 }, attested: { nodes: [{ digest: img.v1.digest }] } });
    expect(await codes(`{ registry(host: "${host}") { images(filter: { attestationPredicateType: "" }) { totalCount } } }`)).toEqual([
      ['BAD_USER_INPUT', 'filter.attestationPredicateType must be 1 to 1024 characters'],
    ]);
    expect((await gql(`{ registry(host: "${host}") { images(filter: { status: [signed] }) { totalCount } } }`)).errors?.[0]?.message).toMatch(/ImageStatus/);
  });

  it('answers whether the registry ever told Signet about a digest', async () => {
    const q = `query($d: String!, $r: String!) {
      deliveries(digest: $d) { totalCount nodes { source statusCode result eventCount receivedAt receivedCount payload } }
      image(ref: $r) { deliveries { totalCount } } }`;
    const d = await data(q, { d: img.v2.digest, r: `${host}/app/web@${img.v2.digest}` });
    expect(d.deliveries.totalCount).toBeGreaterThanOrEqual(1);
    expect(d.image.deliveries.totalCount).toBe(d.deliveries.totalCount);
    for (const n of d.deliveries.nodes) {
      expect(n).toMatchObject({ source: 'distribution', statusCode: 202 });
      expect(n.payload).toContain(img.v2.digest);
      expect(n.receivedCount).toMatch(/^[1-9][0-9]*$/);
      expect(Date.parse(n.receivedAt)).not.toBeNaN();
    }
    expect((await data(q, { d: `sha256:${'0'.repeat(64)}`, r: `${host}/app/web@${img.v2.digest}` })).deliveries).toEqual({ totalCount: 0, nodes: [] });
    expect(await codes(`{ deliveries(digest: "sha256:nope") { totalCount } }`)).toEqual([['BAD_USER_INPUT', 'digest must be sha256:<64 lowercase hex>, got "sha256:nope"']]);
  });

  it('tells what a tag pointed to at a past time', async () => {
    const { repository } = await data(`query($g: String!) { repository(registry: $g, name: "app/web") { tagHistory(tag: "v1") { nodes { digest seenAt } } } }`, { g: host });
    const [moved, firstPush] = repository.tagHistory.nodes;
    expect([moved.digest, firstPush.digest]).toEqual([img.v1b.digest, img.v1.digest]);
    const at = async (t: string) =>
      (await data(`query($g: String!, $t: DateTime!) { repository(registry: $g, name: "app/web") { tagAt(tag: "v1", at: $t) { digest image { status } } } }`, { g: host, t }))
        .repository.tagAt;
    expect(await at(firstPush.seenAt)).toEqual({ digest: img.v1.digest, image: { status: 'VERIFIED' } });
    expect(await at(new Date(Date.parse(moved.seenAt) - 1).toISOString())).toMatchObject({ digest: img.v1.digest });
    expect(await at(moved.seenAt)).toMatchObject({ digest: img.v1b.digest });
    expect(await at('2001-01-01T00:00:00Z')).toBeNull();
    expect(await codes(`{ repository(registry: "x", name: "y") { tagAt(tag: "v1", at: "yesterday") { digest } } }`)).toEqual([
      ['BAD_USER_INPUT', expect.stringContaining('is not an RFC 3339 date-time')],
    ]);
  });

  it('pages denials with filters, and shows an image’s decision history', async () => {
    const q = `query($after: String, $reason: [DecisionReason!]) { denials(first: 1, after: $after, reason: $reason) {
      totalCount pageInfo { hasNextPage endCursor } nodes { reason current image { digest } } } }`;
    const seen: string[] = [];
    let after: string | null = null;
    for (let i = 0; i < 3; i++) {
      const { denials } = await data(q, { after });
      expect(denials.totalCount).toBe(3);
      seen.push(denials.nodes[0].image.digest);
      expect(denials.pageInfo.hasNextPage).toBe(i < 2);
      after = denials.pageInfo.endCursor;
    }
    expect(seen.sort()).toEqual([img.v1b.digest, img.base.digest, img.api.digest].sort());
    expect((await data(q, { reason: ['UNSIGNED'] })).denials).toMatchObject({ totalCount: 1, nodes: [{ reason: 'UNSIGNED', current: true, image: { digest: img.api.digest } }] });
    const scoped = await data(`query($g: String!) { denials(registry: $g, repository: "lib/base") { nodes { image { digest } } } }`, { g: host });
    expect(scoped.denials.nodes).toEqual([{ image: { digest: img.base.digest } }]);

    const { image } = await data(`query($r: String!) { image(ref: $r) { decision { policyVersion } decisionHistory { totalCount nodes { allowed reason current policyVersion decidedAt } } } }`, {
      r: `${host}/app/web@${img.v1.digest}`,
    });
    expect(image.decisionHistory).toMatchObject({ totalCount: 1, nodes: [{ allowed: true, reason: 'VERIFIED', current: true, policyVersion: image.decision.policyVersion }] });
  });

  it('sums up a registry: share signed, verified and allowed, top signers, outcomes by day', async () => {
    const { registry } = await data(`query($g: String!) { registry(host: $g) {
      summary { repositories images signed verified allowed denied }
      topSigners { identity { subject } images }
      outcomes(days: 7) { day allowed denied undecided } } }`, { g: host });
    const verified = await stack.db.db.selectFrom('manifests').select('id').where('status', '=', 'verified').execute();
    expect(registry.summary).toEqual({ repositories: 3, images: 5, signed: 4, verified: verified.length, allowed: 2, denied: 3 });
    expect(registry.topSigners).toEqual([
      { identity: { subject: ALICE.email }, images: 2 },
      { identity: { subject: BOB.email }, images: 2 },
    ]);
    const today = new Date();
    today.setUTCHours(0, 0, 0, 0);
    expect(registry.outcomes).toEqual([{ day: today.toISOString(), allowed: 2, denied: 3, undecided: 0 }]);
    expect(await codes(`{ registry(host: "${host}") { outcomes(days: 400) { day } } }`)).toEqual([['BAD_USER_INPUT', 'days must be between 1 and 366, got 400']]);
  });
});
