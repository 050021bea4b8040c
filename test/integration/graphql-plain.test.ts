// The plain-query path of /graphql (yoga.ts, `answerPlainQuery`): a POST of a JSON query that runs
// without an error is answered through the envelop alone, with the very bytes yoga gives for it;
// everything else is yoga's. Which path answered is seen in yoga's own debug lines ("Processing
// GraphQL Parameters"), which only its HTTP layer writes.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerGraphql } from '../../services/api/graphql/yoga.ts';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { createHttpServer } from '../../services/common/http.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { seedAllowedImages } from '../helpers/ledger.ts';
import { policyAllowing } from '../helpers/stack.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const policy = parsePolicy(policyAllowing('registry.plain', ALICE, 'team/*'));
const digests = [0, 1, 2].map((i) => sha256Digest(`plain-${i}`));

let test: TestDb;
let app: FastifyInstance;
/** yoga's "Processing GraphQL Parameters" lines so far. */
let yogaLines = 0;

beforeAll(async () => {
  test = await createTestDb();
  await seedAllowedImages(test.db, {
    registry: 'registry.plain',
    repository: 'team/app',
    digests,
    policyVersion: policy.version,
    signer: { subject: ALICE.email, issuer: ALICE.issuer },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      yogaLines += chunk.toString('utf8').split('\n').filter((l) => l.includes('Processing GraphQL Parameters"')).length;
      done();
    },
  });
  const log = createLogger({ logLevel: 'debug' }, {}, sink);
  app = createHttpServer(log, []);
  registerGraphql(app, { db: test.db, log, tokens: [], policyVersion: () => policy.version, policy: () => policy, ledgerEvents: null });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await test?.drop();
});

/** The query by POST (the plain path when it runs cleanly) and by GET (always yoga's), and how many yoga lines the POST wrote. */
async function bothWays(query: string, variables: Record<string, unknown>, headers: Record<string, string> = {}) {
  const before = yogaLines;
  const post = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ query, variables }) });
  const yogaLinesOfPost = yogaLines - before;
  const get = await app.inject({ method: 'GET', url: `/graphql?${new URLSearchParams({ query, variables: JSON.stringify(variables) })}` });
  return { post, get, yogaLinesOfPost };
}

const QUERIES: [string, string, Record<string, unknown>][] = [
  ['image by digest, with signatures', 'query($r: String!) { image(ref: $r) { digest status owners { subject } signatures { status } decision { allowed reason policyVersion } } }', { r: `registry.plain/team/app@${digests[1]}` }],
  ['image by digest, without', 'query($r: String!) { image(ref: $r) { digest reference status } }', { r: `registry.plain/team/app@${digests[0]}` }],
  ['an image not in the ledger', 'query($r: String!) { image(ref: $r) { digest } }', { r: 'registry.plain/team/app:never' }],
  ['a repository and its images', 'query($g: String!) { repository(registry: $g, name: "team/app") { name images(first: 2) { totalCount edges { cursor node { digest } } pageInfo { hasNextPage endCursor } } } }', { g: 'registry.plain' }],
];

describe('plain GraphQL queries', () => {
  it.each(QUERIES)('answers %s as yoga does, without yoga', async (_name, query, variables) => {
    const { post, get, yogaLinesOfPost } = await bothWays(query, variables);
    expect(post.statusCode).toBe(200);
    expect(JSON.parse(post.body)).not.toHaveProperty('errors');
    expect({ status: post.statusCode, type: post.headers['content-type'], body: post.body }).toEqual({ status: get.statusCode, type: get.headers['content-type'], body: get.body });
    expect(yogaLinesOfPost).toBe(0);
  });

  it('leaves errors, other media types, CORS and extensions to yoga', async () => {
    const bad = await bothWays('query($r: String!) { image(ref: $r) { digest } }', { r: 'Not A Ref' });
    expect(JSON.parse(bad.post.body).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(bad.post.body).toBe(bad.get.body);
    expect(bad.yogaLinesOfPost).toBeGreaterThan(0);

    const [, query, variables] = QUERIES[0]!;
    for (const headers of [{ accept: 'application/graphql-response+json' }, { origin: 'https://elsewhere.example' }] as Record<string, string>[]) {
      const { post, yogaLinesOfPost } = await bothWays(query, variables, headers);
      expect(post.statusCode).toBe(200);
      expect(yogaLinesOfPost).toBeGreaterThan(0);
    }
    const before = yogaLines;
    const extended = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ query, variables, extensions: {} }) });
    expect(extended.statusCode).toBe(200);
    expect(yogaLines - before).toBeGreaterThan(0);
    // graphql-armor's limits throw from validation: yoga answers them.
    const nest = (levels: number): string => (levels === 0 ? 'repository { name }' : `repository { images { nodes { ${nest(levels - 1)} } } }`);
    const deep = await bothWays(`{ image(ref: "registry.plain/team/app@${digests[0]}") { ${nest(4)} } }`, {});
    expect(JSON.parse(deep.post.body).errors[0].message).toMatch(/depth limit of 12 exceeded/i);
    expect(deep.post.body).toBe(deep.get.body);
    const invalid = await bothWays('{ imag(ref: "x") { digest } }', {});
    expect(invalid.post.statusCode).toBe(invalid.get.statusCode);
    expect(invalid.post.body).toBe(invalid.get.body);
    expect(invalid.yogaLinesOfPost).toBeGreaterThan(0);
  });
});
