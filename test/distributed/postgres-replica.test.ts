// A Postgres streaming replica as DATABASE_READ_URL: a second cluster started here (initdb,
// pg_basebackup -R). An API-only replica reads decision misses and GraphQL from it — but a miss
// is never answered older than what the API replica was already told: with the replica's replay
// paused, a decision made after it is read from the primary, because the feed event that came
// meanwhile carried a WAL position the replica had not replayed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../services/common/db/client.ts';
import * as images from '../../services/common/db/queries/images.ts';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createDecider } from '../../services/core/decider.ts';
import { ask, feedCounters } from '../helpers/decisions.ts';
import { seedAllowedImages } from '../helpers/ledger.ts';
import { startPostgresPair, type PostgresPair } from '../helpers/postgres-replica.ts';
import { eventually, startTestSignet, TEST_REDIS_URL, type TestSignet } from '../helpers/signet.ts';

const REGISTRY = 'registry.example.com';
const POLICY = `allow_with_verification:
  ${REGISTRY}:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
`;
const policy = parsePolicy(POLICY);
const SIGNER = { subject: 'alice@example.com', issuer: 'https://accounts.example.com' };

let pair: PostgresPair;
let signet: TestSignet;
let primary: Db;
let replica: Db;
let publisher: Redis;
let tmp: string;

beforeAll(async () => {
  pair = await startPostgresPair();
  tmp = await mkdtemp(join(tmpdir(), 'signet-pg-replica-'));
  await writeFile(join(tmp, 'policy.yaml'), POLICY);
  signet = await startTestSignet({
    DATABASE_URL: `${pair.primary}/signet`,
    DATABASE_READ_URL: `${pair.replica}/signet`,
    SIGNET_ROLES: 'api',
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
  });
  primary = createDb(`${pair.primary}/signet`, createLogger({ logLevel: 'silent' }));
  replica = createDb(`${pair.replica}/signet`, createLogger({ logLevel: 'silent' }));
  publisher = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await signet?.stop();
  publisher?.disconnect();
  await primary?.destroy();
  await replica?.destroy();
  await pair?.stop();
  if (tmp !== undefined) {
    await rm(tmp, { recursive: true, force: true });
  }
});

const seed = (digest: Digest) => seedAllowedImages(primary, { registry: REGISTRY, repository: 'team/app', digests: [digest], policyVersion: policy.version, signer: SIGNER });
const onReplica = (digest: Digest) =>
  eventually(async () => ((await images.findId(replica, REGISTRY, 'team/app', digest)) === null ? undefined : true), `${digest} on the replica`);
const missReads = async () => {
  const text = (await signet.app.inject({ method: 'GET', url: '/metrics' })).body;
  const read = (db: string) => Number(new RegExp(`^signet_decision_miss_reads\\{database="${db}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { replica: read('replica'), primary: read('primary') };
};
const graphqlFinds = async (digest: Digest) => {
  const res = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query: `{ image(ref: "${REGISTRY}/team/app@${digest}") { digest } }` } });
  return res.json<{ data: { image: { digest: string } | null } }>().data.image !== null;
};

describe('a streaming replica as DATABASE_READ_URL', () => {
  it('answers misses and GraphQL from the replica, and from the primary while the replica is behind what the API was told', async () => {
    const a = sha256Digest('replicated before');
    await seed(a);
    await onReplica(a);
    expect(await ask(signet, `${REGISTRY}/team/app@${a}`)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await missReads()).toEqual({ replica: 1, primary: 0 });
    expect(await graphqlFinds(a)).toBe(true);

    // The replica stops replaying. B is decided on the primary; then a decision event for C
    // reaches the API with a WAL position past the replica's.
    await pair.pauseReplay(true);
    const b = sha256Digest('decided while the replica is paused');
    const c = sha256Digest('announced while the replica is paused');
    await seed(b);
    await seed(c);
    const decider = createDecider({ db: primary, redis: publisher, stream: ledgerStream(signet.config.redis), policy, policySource: 'test', log: createLogger({ logLevel: 'silent' }) });
    await decider.decideManifests([(await images.findId(primary, REGISTRY, 'team/app', c))!]);
    await eventually(async () => ((await feedCounters(signet)).applied >= 1 ? true : undefined), 'the decision event applied');
    // GraphQL reads the replica, which lags: it does not know B yet.
    expect(await graphqlFinds(b)).toBe(false);
    // The miss for B goes to the primary: the replica has not replayed what the API was told.
    expect(await ask(signet, `${REGISTRY}/team/app@${b}`)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await missReads()).toEqual({ replica: 1, primary: 1 });

    await pair.pauseReplay(false);
    const d = sha256Digest('replicated after');
    await seed(d);
    await onReplica(d);
    await eventually(async () => (await graphqlFinds(b) ? true : undefined), 'GraphQL to see B once the replica caught up');
    expect(await ask(signet, `${REGISTRY}/team/app@${d}`)).toMatchObject({ allowed: true, reason: 'verified' });
    expect(await missReads()).toEqual({ replica: 2, primary: 1 });
  });
});
