// The GraphQL ownership API end to end: every row it reads was indexed by Signet from pushes to a
// real docker-registry (signatures made by the test Sigstore), never inserted by hand.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerGraphql } from '../../services/api/graphql/yoga.ts';
import type { Digest } from '../../services/common/domain/digest.ts';
import { createLogger } from '../../services/common/logger.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { pushIndex, pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload, type KeylessIdentity, type TestSigstore } from '../signer/signer.ts';

const ISSUER = 'https://token.actions.githubusercontent.com';
const OTHER_ISSUER = 'https://accounts.example.com';
const TOKEN = 'graphql-test-token-0123456789';
const alice: KeylessIdentity = {
  uri: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main',
  issuer: ISSUER,
  claims: { 12: 'https://github.com/acme/app', 14: 'refs/heads/main', 20: 'push' },
};
const bob: KeylessIdentity = { email: 'bob@example.com', issuer: OTHER_ISSUER };
const carol: KeylessIdentity = { email: 'carol@example.com', issuer: OTHER_ISSUER };

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let stack: TestStack;
let alerts: Server;
const received: { text: string }[] = [];

interface GqlResult {
  data?: any;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql(query: string, variables: Record<string, unknown> = {}, token: string | null = TOKEN): Promise<GqlResult> {
  const res = await fetch(`${signet.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GqlResult;
}

async function data(query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const r = await gql(query, variables);
  expect(r.errors).toBeUndefined();
  return r.data;
}

const ref = (repo: string, digest: Digest) => `${registry.host}/${repo}@${digest}`;

async function sign(repo: string, digest: Digest, signers: readonly KeylessIdentity[]): Promise<void> {
  const layers = [];
  for (const s of signers) {
    layers.push(await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, digest), s));
  }
  await pushCosignSignatures(registry.url, repo, digest, layers);
}

/** Waits until the ledger shows `count` signatures on the image. */
function indexed(repo: string, digest: Digest, count: number) {
  return eventually(async () => {
    const d = await data(`query($r: String!) { image(ref: $r) { status signatures { status } } }`, { r: ref(repo, digest) });
    return d.image !== null && d.image.signatures.length === count ? d.image : undefined;
  }, `${repo}@${digest} with ${count} signatures`);
}

let v1: PushedImage;
let v2: PushedImage;
let v1b: PushedImage;
let plain: PushedImage;
let multi: Awaited<ReturnType<typeof pushIndex>>;

beforeAll(async () => {
  alerts = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { text: string });
      res.writeHead(200).end('ok');
    });
  });
  alerts.listen(0, '127.0.0.1');
  await once(alerts, 'listening');
  stack = await startTestStack({
    name: 'graphql',
    policy: (host) => `allow_with_verification:\n  "${host}":\n    team/*:\n      certificate-identity-regexp: "https://github.com/acme/.*"\n      certificate-oidc-issuer: ${ISSUER}\n`,
    env: () => ({
      SIGNET_API_TOKENS: `other-token-abcdefghijklmnop,${TOKEN}`,
      SIGNET_ALERT_WEBHOOK_URL: `http://127.0.0.1:${(alerts.address() as AddressInfo).port}/hooks/slack`,
    }),
  });
  ({ db, sigstore, registry, signet } = stack);

  // team/app: v1 signed by alice, then re-signed by alice; v2 signed by alice and bob (drift: bob
  // is new to the repository); then v1 moves to a new image signed by alice.
  v1 = await pushRandomImage(registry.url, 'team/app', 'v1');
  await sign('team/app', v1.digest, [alice]);
  await indexed('team/app', v1.digest, 1);
  v2 = await pushRandomImage(registry.url, 'team/app', 'v2');
  await sign('team/app', v2.digest, [alice, bob]);
  await indexed('team/app', v2.digest, 2);
  await sign('team/app', v1.digest, [alice, alice]);
  await indexed('team/app', v1.digest, 3);
  v1b = await pushRandomImage(registry.url, 'team/app', 'v1');
  await sign('team/app', v1b.digest, [alice]);
  await indexed('team/app', v1b.digest, 1);
  // team/multi: a signed index whose children are unsigned; team/plain: unsigned.
  multi = await pushIndex(registry.url, 'team/multi', 'latest');
  await sign('team/multi', multi.digest, [carol]);
  await indexed('team/multi', multi.digest, 1);
  plain = await pushRandomImage(registry.url, 'team/plain', '1');
  await indexed('team/plain', plain.digest, 0);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  alerts?.close();
});

describe('GraphQL ownership API', () => {
  it('answers who signed an image, with Rekor coordinates, claims and the decision', async () => {
    const { image } = await data(
      `query($r: String!) { image(ref: $r) {
        digest registry repository { name registry } reference status size tags firstSignedAt lastSignedAt
        owners { subject issuer kind }
        signatures { format status verified reason rekorLogIndex rekorLogId integratedTime rekorUrl trustRootVersion
          identity { subject issuer } claims { name oid value } }
        decision { allowed reason rule policyVersion verifiedAt signers { subject issuer } }
      } }`,
      { r: `${registry.host}/team/app:v2` },
    );
    expect(image).toMatchObject({
      digest: v2.digest,
      registry: registry.host,
      repository: { name: 'team/app', registry: registry.host },
      reference: ref('team/app', v2.digest),
      status: 'VERIFIED',
      tags: ['v2'],
    });
    // BigInt: a decimal string.
    expect(image.size).toMatch(/^[1-9][0-9]*$/);
    expect(image.owners.map((o: any) => o.subject).sort()).toEqual(['bob@example.com', alice.uri]);
    expect(image.signatures).toHaveLength(2);
    for (const s of image.signatures) {
      expect(s).toMatchObject({ format: 'COSIGN_LEGACY', status: 'VERIFIED', verified: true, reason: null });
      // 64-bit safe: a decimal string, with the log it is in and when it was integrated.
      expect(s.rekorLogIndex).toMatch(/^[0-9]+$/);
      expect(s.rekorLogId).toMatch(/^[0-9a-f]{64}$/);
      expect(Date.parse(s.integratedTime)).not.toBeNaN();
      // The test log is not the public-good Rekor: no public link.
      expect(s.rekorUrl).toBeNull();
    }
    const aliceSig = image.signatures.find((s: any) => s.identity.subject === alice.uri);
    expect(aliceSig.identity.issuer).toBe(ISSUER);
    expect(aliceSig.claims).toEqual(
      expect.arrayContaining([
        { name: 'sourceRepositoryUri', oid: '1.3.6.1.4.1.57264.1.12', value: 'https://github.com/acme/app' },
        { name: 'sourceRepositoryRef', oid: '1.3.6.1.4.1.57264.1.14', value: 'refs/heads/main' },
        { name: 'buildTrigger', oid: '1.3.6.1.4.1.57264.1.20', value: 'push' },
        { name: 'issuer', oid: '1.3.6.1.4.1.57264.1.8', value: ISSUER },
      ]),
    );
    expect(image.decision).toMatchObject({ allowed: true, reason: 'VERIFIED', signers: [{ subject: alice.uri, issuer: ISSUER }] });
    expect(image.decision.policyVersion).toMatch(/^sha256:/);
    expect(Date.parse(image.firstSignedAt)).toBeLessThanOrEqual(Date.parse(image.lastSignedAt));
  });

  it('a re-signed image keeps every signature and one owner; a moved tag resolves to its new digest', async () => {
    const { old, moved } = await data(
      `query($old: String!, $moved: String!) {
        old: image(ref: $old) { tags owners { subject } signatures { identity { subject } } }
        moved: image(ref: $moved) { digest tags owners { subject } }
      }`,
      { old: ref('team/app', v1.digest), moved: `${registry.host}/team/app:v1` },
    );
    expect(old.signatures).toHaveLength(3);
    expect(old.owners).toEqual([{ subject: alice.uri }]);
    expect(old.tags).toEqual([]);
    // By tag with its signers: the image and its signatures in one statement, through the tag.
    expect(moved).toEqual({ digest: v1b.digest, tags: ['v1'], owners: [{ subject: alice.uri }] });

    const { repository } = await data(
      `query($g: String!) { repository(registry: $g, name: "team/app") {
        name tags { name digest image { digest status } }
        tagHistory(tag: "v1") { totalCount nodes { tag digest previousDigest seenAt } }
        owners { identity { subject } firstSignedAt lastSignedAt imageCount }
        images(first: 10) { totalCount nodes { digest } }
      } }`,
      { g: registry.host },
    );
    expect(repository.tags).toEqual([
      { name: 'v1', digest: v1b.digest, image: { digest: v1b.digest, status: 'VERIFIED' } },
      { name: 'v2', digest: v2.digest, image: { digest: v2.digest, status: 'VERIFIED' } },
    ]);
    expect(repository.tagHistory.totalCount).toBe(2);
    expect(repository.tagHistory.nodes.map((n: any) => [n.digest, n.previousDigest])).toEqual([
      [v1b.digest, v1.digest],
      [v1.digest, null],
    ]);
    // Owners over time, in the order they first signed.
    expect(repository.owners.map((o: any) => [o.identity.subject, o.imageCount])).toEqual([
      [alice.uri, 3],
      ['bob@example.com', 1],
    ]);
    expect(repository.images.totalCount).toBe(3);
    expect(repository.images.nodes.map((n: any) => n.digest)).toEqual([v1b.digest, v2.digest, v1.digest]);
  });

  it('an index lists its children with platforms; a child names its index; an unsigned image owns nothing', async () => {
    const { index, child, unsigned } = await data(
      `query($i: String!, $c: String!, $u: String!) {
        index: image(ref: $i) { status owners { subject } children { platform { os architecture variant } image { digest status } } }
        child: image(ref: $c) { status parents { platform { architecture } index { digest } } }
        unsigned: image(ref: $u) { status owners { subject } signatures { status } decision { allowed reason } firstSignedAt }
      }`,
      { i: `${registry.host}/team/multi:latest`, c: ref('team/multi', multi.images[1]!.digest), u: `${registry.host}/team/plain:1` },
    );
    expect(index.status).toBe('VERIFIED');
    expect(index.owners).toEqual([{ subject: 'carol@example.com' }]);
    expect(index.children).toEqual([
      { platform: { os: 'linux', architecture: 'amd64', variant: null }, image: { digest: multi.images[0]!.digest, status: 'UNSIGNED' } },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, image: { digest: multi.images[1]!.digest, status: 'UNSIGNED' } },
    ]);
    expect(child).toEqual({ status: 'UNSIGNED', parents: [{ platform: { architecture: 'arm64' }, index: { digest: multi.digest } }] });
    expect(unsigned).toEqual({ status: 'UNSIGNED', owners: [], signatures: [], decision: { allowed: false, reason: 'UNSIGNED' }, firstSignedAt: null });
    expect((await data(`{ image(ref: "${registry.host}/team/never:1") { digest } }`)).image).toBeNull();
  });

  it('answers what an identity signed, in pages, and where it signs', async () => {
    const q = `query($s: String!, $after: String) { identity(subject: $s) {
      subject issuer kind firstSignedAt
      images(first: 2, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { digest repository { name } } } }
      repositories { totalCount nodes { repository { name } imageCount } }
    } }`;
    const first = (await data(q, { s: alice.uri })).identity;
    expect(first).toMatchObject({ subject: alice.uri, issuer: ISSUER, kind: 'URI' });
    expect(first.images.pageInfo).toMatchObject({ hasPreviousPage: false, startCursor: first.images.edges[0].cursor });
    expect(first.images.totalCount).toBe(3);
    expect(first.images.pageInfo.hasNextPage).toBe(true);
    expect(first.images.edges.map((e: any) => e.node.digest)).toEqual([v1b.digest, v2.digest]);
    expect(first.repositories).toEqual({ totalCount: 1, nodes: [{ repository: { name: 'team/app' }, imageCount: 3 }] });
    const second = (await data(q, { s: alice.uri, after: first.images.pageInfo.endCursor })).identity;
    expect(second.images.edges.map((e: any) => e.node.digest)).toEqual([v1.digest]);
    expect(second.images.pageInfo).toEqual({ hasNextPage: false, hasPreviousPage: true, startCursor: second.images.edges[0].cursor, endCursor: second.images.edges[0].cursor });
    // Past the end: an empty page, not an error.
    const past = (await data(q, { s: alice.uri, after: second.images.pageInfo.endCursor })).identity;
    expect(past.images).toMatchObject({ totalCount: 3, edges: [], pageInfo: { hasNextPage: false, endCursor: null } });
    // Filtered by repository, and an identity nobody has seen.
    const filtered = await data(`query($s: String!) { identity(subject: $s) { images(repository: "team/multi") { totalCount } } }`, { s: alice.uri });
    expect(filtered.identity.images.totalCount).toBe(0);
    expect((await data(`{ identity(subject: "nobody@example.com") { subject } }`)).identity).toBeNull();
  });

  it('records ownership drift, lists it, and sends the alert at push time', async () => {
    const { ownershipChanges } = await data(`{ ownershipChanges(kind: ADDED) { totalCount nodes {
      kind repository { name } identity { subject } image { digest } previousOwners { subject } detectedAt } } }`);
    expect(ownershipChanges.totalCount).toBe(1);
    expect(ownershipChanges.nodes[0]).toMatchObject({
      kind: 'ADDED',
      repository: { name: 'team/app' },
      identity: { subject: 'bob@example.com' },
      image: { digest: v2.digest },
      previousOwners: [{ subject: alice.uri }],
    });
    const all = await data(`query($g: String!) { repository(registry: $g, name: "team/app") { ownershipChanges { nodes { kind identity { subject } } } } }`, {
      g: registry.host,
    });
    expect(all.repository.ownershipChanges.nodes).toEqual([
      { kind: 'ADDED', identity: { subject: 'bob@example.com' } },
      { kind: 'INITIAL', identity: { subject: alice.uri } },
    ]);
    // Exactly one alert (the drift), Slack-shaped; first signers of a repository are not alerts.
    await eventually(() => Promise.resolve(received.length > 0 ? true : undefined), 'the drift alert');
    expect(received).toHaveLength(1);
    expect(received[0]!.text).toContain('bob@example.com');
    expect(received[0]!.text).toContain(`${registry.host}/team/app@${v2.digest}`);
    expect(received[0]!.text).toContain(alice.uri);
  });

  it('streams ownership changes to a subscription (server-sent events)', async () => {
    const controller = new AbortController();
    const res = await fetch(`${signet.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ query: 'subscription { ownershipChanged(repository: "team/plain") { kind identity { subject } image { digest } } }' }),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const signed = sign('team/plain', plain.digest, [bob]);
    let text = '';
    while (!text.includes('"ownershipChanged"')) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      text += Buffer.from(value).toString();
    }
    controller.abort();
    await signed;
    const event = JSON.parse(/data: (\{.*"ownershipChanged".*\})/.exec(text)![1]!);
    expect(event.data.ownershipChanged).toEqual({ kind: 'INITIAL', identity: { subject: 'bob@example.com' }, image: { digest: plain.digest } });
  });

  it('refuses bad input, abusive queries and missing tokens with clear errors', async () => {
    const codes = async (query: string) => (await gql(query)).errors?.map((e) => [e.extensions?.code, e.message]);
    expect(await codes('{ image(ref: "Not A Ref") { digest } }')).toEqual([['BAD_USER_INPUT', expect.stringContaining('invalid image reference')]]);
    expect(await codes(`{ identity(subject: "${alice.uri}") { images(first: 101) { totalCount } } }`)).toEqual([
      ['BAD_USER_INPUT', 'first must be between 1 and 100, got 101'],
    ]);
    expect(await codes(`{ identity(subject: "${alice.uri}") { images(after: "bm9wZQ") { totalCount } } }`)).toEqual([
      ['BAD_USER_INPUT', expect.stringContaining('is not a cursor of this list')],
    ]);
    // NUL and other control characters, as a literal or in a variable, are the caller's mistake.
    expect(await codes('{ identity(subject: "alice\\u0000@example.com") { subject } }')).toEqual([['BAD_USER_INPUT', expect.stringContaining('control character')]]);
    expect((await gql('query ($s: String!) { identities(subject: $s) { nodes { subject } } }', { s: 'x\u0000y' })).errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
      ['BAD_USER_INPUT', expect.stringContaining('variable $s')],
    ]);
    // Deeper than the limit (12).
    const nest = (levels: number): string => (levels === 0 ? 'repository { name }' : `repository { images { nodes { ${nest(levels - 1)} } } }`);
    const deep = `{ image(ref: "${registry.host}/team/app:v2") { ${nest(4)} } }`;
    expect((await gql(deep)).errors?.[0]?.message).toMatch(/depth limit of 12 exceeded/i);
    // Within the limit, the same shape answers.
    expect((await gql(`{ image(ref: "${registry.host}/team/app:v2") { ${nest(2)} } }`)).errors).toBeUndefined();
    const aliases = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: identities(subject: "x") { nodes { subject } }`).join(' ')} }`;
    expect((await gql(aliases)).errors?.[0]?.message).toMatch(/aliases/i);
    // Field suggestions are not leaked.
    expect((await gql('{ imag(ref: "x") { digest } }')).errors?.[0]?.message).not.toMatch(/did you mean/i);
    // Two issuers for one subject: ask for the issuer.
    await sign('team/plain', plain.digest, [bob, { email: 'bob@example.com', issuer: ISSUER }]);
    await eventually(async () => ((await data('{ identities(subject: "bob@example.com") { nodes { issuer } } }')).identities.nodes.length === 2 ? true : undefined), 'bob under two issuers');
    expect(await codes('{ identity(subject: "bob@example.com") { subject } }')).toEqual([['AMBIGUOUS_IDENTITY', expect.stringContaining('pass issuer')]]);
    expect((await data(`{ identity(subject: "bob@example.com", issuer: "${OTHER_ISSUER}") { issuer } }`)).identity).toEqual({ issuer: OTHER_ISSUER });

    for (const token of [null, 'wrong-token-0123456789abcdef']) {
      const res = await fetch(`${signet.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify({ query: '{ identities(subject: "x") { subject } }' }),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    }
    // GraphiQL renders without a token; it holds no data.
    const page = await fetch(`${signet.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('GraphiQL');
  });

  it('batches: 100 images with their signatures, owners and tags cost a fixed number of statements', async () => {
    const pushed: PushedImage[] = [];
    for (let i = 0; i < 100; i++) {
      pushed.push(await pushRandomImage(registry.url, 'bulk/app', `t${i}`));
    }
    for (const [i, img] of pushed.slice(0, 10).entries()) {
      await sign('bulk/app', img.digest, [i % 2 === 0 ? alice : bob]);
    }
    await eventually(async () => {
      const d = await data(`query($g: String!) { repository(registry: $g, name: "bulk/app") { images(first: 100) { totalCount nodes { status } } } }`, {
        g: registry.host,
      });
      const nodes = d.repository?.images.nodes ?? [];
      return nodes.length === 100 && nodes.filter((n: any) => n.status === 'VERIFIED').length === 10 ? true : undefined;
    }, '100 images indexed, 10 of them signed', 60_000);
    // The same Postgres as Signet's, observed through a counting plugin.
    let statements = 0;
    // Counted as results come back: once per statement executed (transformQuery also sees subqueries).
    const counting: KyselyPlugin = {
      transformQuery: (args) => args.node,
      transformResult: (args) => {
        statements += 1;
        return Promise.resolve(args.result);
      },
    };
    const app = Fastify();
    registerGraphql(app, {
      db: db.db.withPlugin(counting),
      log: createLogger({ logLevel: 'silent' }),
      tokens: [],
      policyVersion: () => signet.policy.version,
      policy: () => signet.policy,
      ledgerEvents: null,
    });
    const run = async (first: number) => {
      statements = 0;
      const res = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: `query($g: String!, $n: Int!) { repository(registry: $g, name: "bulk/app") { images(first: $n) { totalCount nodes {
            digest tags decision { allowed } signatures { status identity { subject } } owners { subject issuer } } } } }`,
          variables: { g: registry.host, n: first },
        },
      });
      expect(res.json().errors).toBeUndefined();
      return { statements, images: res.json().data.repository.images.nodes.length as number };
    };
    const one = await run(1);
    const all = await run(100);
    expect(one.images).toBe(1);
    expect(all.images).toBe(100);
    // repository, the page (image rows included), count, then one each: tags, decisions, signatures
    // (with their signers' identities joined, which also answer owners).
    expect(all.statements).toBe(6);
    // Fewer kinds of rows to load (an unsigned image has no owners to name), never more statements.
    expect(one.statements).toBeLessThanOrEqual(all.statements);

    // One image with its owners and signatures (signers included): one statement, the signatures
    // read laterally beside the image. Without them, the image alone is one statement too.
    const statementsFor = async (query: string) => {
      statements = 0;
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables: { r: ref('team/app', v2.digest) } } });
      expect(res.json().errors).toBeUndefined();
      return { statements, image: res.json().data.image };
    };
    const full = await statementsFor('query($r: String!) { image(ref: $r) { digest owners { subject issuer } signatures { status rekorLogIndex identity { subject } } } }');
    expect(full.statements).toBe(1);
    expect(full.image.owners.map((o: any) => o.subject).sort()).toEqual(['bob@example.com', alice.uri]);
    expect(full.image.signatures).toHaveLength(2);
    expect((await statementsFor('query($r: String!) { image(ref: $r) { digest status } }')).statements).toBe(1);
    const unsignedImage = await app.inject({ method: 'POST', url: '/graphql', payload: { query: 'query($r: String!) { image(ref: $r) { owners { subject } signatures { status } } }', variables: { r: ref('bulk/app', pushed[99]!.digest) } } });
    expect(unsignedImage.json().data.image).toEqual({ owners: [], signatures: [] });
    await app.close();
  });
});
