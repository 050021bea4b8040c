// The admission record: real AdmissionReview requests through a running Signet (API role), each
// answer checked, then the record of it — in Postgres, over GraphQL and in /metrics — across a
// restart of Signet and an outage of Postgres (a TCP proxy in front of the real one, cut and
// restored).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdmissionReview } from '../../services/api/admission.ts';
import { type AdmissionOutcome, BatchedAdmissionRecorder } from '../../services/api/admission-record.ts';
import type { ImageDecision } from '../../services/api/decisions/lookup.ts';
import { createDb } from '../../services/common/db/client.ts';
import * as admissions from '../../services/common/db/queries/admissions.ts';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createMetrics } from '../../services/common/metrics.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createTestDb, PG_SERVER, type TestDb } from '../helpers/db.ts';
import { readFixtureJson } from '../helpers/fixtures.ts';
import { seedTeamApp } from '../helpers/ledger.ts';
import { eventually, startTestSignet, type TestSignet } from '../helpers/signet.ts';
import { startPostgresProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

function field(value: unknown, ...path: string[]): string | null {
  let v = value;
  for (const step of path) {
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[step] : undefined;
  }
  return typeof v === 'string' && v !== '' ? v : null;
}

/** An outcome for the writer's own tests: every image enforced, the request denied when any image is. */
function enforcedOutcome(request: AdmissionReview['request'], decisions: readonly ImageDecision[], at = new Date()): AdmissionOutcome {
  const images = decisions.map((d) => ({ image: d.image, digest: d.digest, allowed: d.allowed, reason: d.reason, rule: d.rule ?? null, mode: 'enforce' as const }));
  return {
    at,
    uid: request.uid,
    namespace: field(request, 'namespace'),
    kind: request.kind.kind,
    name: field(request, 'name') ?? field(request.object, 'metadata', 'name'),
    operation: request.operation ?? null,
    user: field(request, 'userInfo', 'username'),
    result: images.every((i) => i.allowed) ? 'allowed' : 'denied',
    breakGlass: false,
    images,
  };
}

const POLICY = `allow_with_verification:
  registry.example.com:
    team/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.example.com
allow_without_verification:
  docker.io: [library/*]
`;
const known = sha256Digest('recorded image');
const KNOWN = `registry.example.com/team/app@${known}`;
const UNKNOWN = `registry.example.com/team/app@${sha256Digest('never pushed')}`;

let db: TestDb;
let proxy: TcpProxy;
let tmp: string;
let env: Record<string, string>;
const running: TestSignet[] = [];

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-admission-record-'));
  await writeFile(join(tmp, 'policy.yaml'), POLICY);
  await seedTeamApp(db.db, POLICY, [known]);
  let url: string;
  ({ proxy, url } = await startPostgresProxy(PG_SERVER, db.url));
  env = { DATABASE_URL: url, SIGNET_ROLES: 'api', SIGNET_POLICY: join(tmp, 'policy.yaml') };
});

afterAll(async () => {
  for (const s of running) {
    await s.stop();
  }
  await proxy?.close();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function start(extra: Record<string, string> = {}): Promise<TestSignet> {
  const signet = await startTestSignet({ ...env, ...extra });
  running.push(signet);
  return signet;
}

async function stop(signet: TestSignet): Promise<void> {
  running.splice(running.indexOf(signet), 1);
  await signet.stop();
}

interface Review {
  apiVersion: string;
  kind: 'AdmissionReview';
  request: Record<string, unknown> & { uid: string };
}

function podReview(opts: { namespace: string; name: string; images: string[]; user?: string; uid?: string }): Review {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: opts.uid ?? randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: opts.namespace,
      operation: 'CREATE',
      userInfo: { username: opts.user ?? 'alice', groups: ['system:authenticated'] },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: opts.name, namespace: opts.namespace },
        spec: { containers: opts.images.map((image, i) => ({ name: `c${i}`, image })) },
      },
    },
  };
}

async function validate(signet: TestSignet, review: Review, path = '/admission/validate') {
  const res = await signet.app.inject({ method: 'POST', url: path, payload: review as object });
  expect(res.statusCode).toBe(200);
  return res.json<{ apiVersion: string; response: { uid: string; allowed: boolean; status?: { message: string } } }>().response;
}

interface Row {
  uid: string;
  namespace: string | null;
  kind: string;
  name: string | null;
  operation: string | null;
  username: string | null;
  result: string;
  reason: string;
  break_glass: boolean;
  images: { image: string; digest: string | null; allowed: boolean; reason: string; rule: string | null; mode: string }[];
}

async function rows(uids: readonly string[]): Promise<Row[]> {
  if (uids.length === 0) {
    return [];
  }
  return (await db.db
    .selectFrom('admission_records')
    .select(['uid', 'namespace', 'kind', 'name', 'operation', 'username', 'result', 'reason', 'break_glass', 'images'])
    .where('uid', 'in', [...uids])
    .orderBy('id')
    .execute()) as unknown as Row[];
}

/** Waits until every one of `uids` is recorded. */
async function recorded(uids: readonly string[]): Promise<Row[]> {
  return eventually(async () => {
    const found = await rows(uids);
    return found.length === uids.length ? found : undefined;
  }, `${uids.length} admission records`);
}

/** One sample from /metrics (0 when the series is absent). */
async function metric(signet: TestSignet, series: string): Promise<number> {
  const text = (await signet.app.inject({ method: 'GET', url: '/metrics' })).body;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function graphql<T>(signet: TestSignet, query: string, variables: Record<string, unknown> = {}) {
  const res = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });
  return res.json<{ data?: T; errors?: { message: string; extensions?: { code?: string } }[] }>();
}

describe('the admission record', () => {
  it('records each validation answered, as answered: allowed and denied, with user, object and every image', async () => {
    const signet = await start();
    const allowedReview = podReview({ namespace: 'team-a', name: 'web', images: [KNOWN, 'nginx:1.27'], user: 'alice' });
    const deniedReview = podReview({ namespace: 'team-b', name: 'batch', images: [KNOWN, UNKNOWN], user: 'bob' });
    expect(await validate(signet, allowedReview)).toMatchObject({ uid: allowedReview.request.uid, allowed: true });
    const denied = await validate(signet, deniedReview);
    expect(denied).toMatchObject({ uid: deniedReview.request.uid, allowed: false });
    expect(denied.status?.message).toContain(UNKNOWN);
    // A v1beta1 Deployment from the fixtures: no request.name, so metadata.name; user from userInfo.
    const deployment = readFixtureJson<Review>('admission/admissionreview/connaisseur-01_deployment.json');
    deployment.request.uid = randomUUID();
    expect((await validate(signet, deployment)).allowed).toBe(false);
    // Mutation never denies; it is not recorded (a cluster running both webhooks would count each Pod twice).
    const mutated = podReview({ namespace: 'team-a', name: 'web', images: [KNOWN] });
    expect((await validate(signet, mutated, '/admission/mutate')).allowed).toBe(true);

    const [a, d, dep] = await recorded([allowedReview.request.uid, deniedReview.request.uid, deployment.request.uid]);
    expect(a).toMatchObject({ namespace: 'team-a', kind: 'Pod', name: 'web', operation: 'CREATE', username: 'alice', result: 'allowed', reason: 'verified', break_glass: false });
    expect(a!.images).toEqual([
      // The seeded decision row names no rule; a decision made at lookup does.
      { image: KNOWN, digest: known, allowed: true, reason: 'verified', rule: null, mode: 'enforce' },
      { image: 'nginx:1.27', digest: null, allowed: true, reason: 'allowed_without_verification', rule: expect.stringContaining('docker.io'), mode: 'enforce' },
    ]);
    expect(d).toMatchObject({ namespace: 'team-b', name: 'batch', username: 'bob', result: 'denied', reason: 'unknown' });
    expect(d!.images.map((i) => [i.image, i.digest, i.allowed, i.reason, i.mode])).toEqual([
      [KNOWN, known, true, 'verified', 'enforce'],
      [UNKNOWN, UNKNOWN.split('@')[1], false, 'unknown', 'enforce'],
    ]);
    expect(d!.images[1]!.rule).toContain('team/*');
    expect(dep).toMatchObject({ namespace: 'test-connaisseur', kind: 'Deployment', name: 'charlie-deployment', username: 'admin', result: 'denied' });
    expect(await rows([mutated.request.uid])).toEqual([]);

    expect(await metric(signet, 'signet_admission_requests_total{result="allowed",reason="verified"}')).toBe(1);
    expect(await metric(signet, 'signet_admission_requests_total{result="denied",reason="unknown"}')).toBe(1);
    // Counted once the INSERT's answer is back, a moment after its rows are visible to other connections.
    await expect.poll(() => metric(signet, 'signet_admission_records_written_total')).toBeGreaterThanOrEqual(3);
    await stop(signet);
  });

  it('is read over GraphQL, newest first, filtered by namespace, result, reason, image and time, page by page', async () => {
    const signet = await start();
    const ns = `graphql-${randomUUID().slice(0, 8)}`;
    const before = new Date();
    const reviews = [
      podReview({ namespace: ns, name: 'one', images: [KNOWN] }),
      podReview({ namespace: ns, name: 'two', images: [UNKNOWN] }),
      podReview({ namespace: ns, name: 'three', images: ['docker.io/library/nginx:1.27', KNOWN] }),
    ];
    for (const r of reviews) {
      await validate(signet, r);
    }
    await recorded(reviews.map((r) => r.request.uid));
    const q = `query($ns: String, $result: AdmissionResult, $reason: String, $image: String, $since: DateTime, $until: DateTime, $first: Int, $after: String) {
      admissions(namespace: $ns, result: $result, reason: $reason, image: $image, since: $since, until: $until, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } nodes { name result reason user kind namespace at recordedAt images { image digest mode allowed reason } }
      }
    }`;
    type Page = {
      admissions: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: { name: string; result: string; reason: string; at: string; recordedAt: string; images: { mode: string }[] }[] };
    };
    const names = async (vars: Record<string, unknown>) => (await graphql<Page>(signet, q, { ns, ...vars })).data!.admissions.nodes.map((n) => n.name);

    expect(await names({})).toEqual(['three', 'two', 'one']);
    expect(await names({ result: 'DENIED' })).toEqual(['two']);
    expect(await names({ reason: 'unknown' })).toEqual(['two']);
    expect(await names({ reason: 'allowed_without_verification' })).toEqual(['three']);
    // An image as written, normalised, by repository, or by digest.
    expect(await names({ image: 'nginx:1.27' })).toEqual(['three']);
    expect(await names({ image: 'docker.io/library/nginx' })).toEqual(['three']);
    expect(await names({ image: known })).toEqual(['three', 'one']);
    expect(await names({ image: 'registry.example.com/team/app' })).toEqual(['three', 'two', 'one']);
    expect(await names({ since: before.toISOString() })).toEqual(['three', 'two', 'one']);
    expect(await names({ until: before.toISOString() })).toEqual([]);

    const first = (await graphql<Page>(signet, q, { ns, first: 2 })).data!.admissions;
    expect(first.totalCount).toBe(3);
    expect(first.nodes.map((n) => n.name)).toEqual(['three', 'two']);
    expect(first.nodes[0]!.images[0]!.mode).toBe('ENFORCE');
    // Times are DateTime: RFC 3339 in UTC, as everywhere in the schema; recorded after answered.
    const { at, recordedAt } = first.nodes[0]!;
    expect(at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(recordedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(at)).toBeGreaterThanOrEqual(before.getTime());
    expect(Date.parse(recordedAt)).toBeGreaterThanOrEqual(Date.parse(at));
    // Any offset is taken as an input and means the same instant.
    const offset = new Date(before.getTime() + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    expect(await names({ since: offset })).toEqual(['three', 'two', 'one']);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = (await graphql<Page>(signet, q, { ns, first: 2, after: first.pageInfo.endCursor })).data!.admissions;
    expect(second.nodes.map((n) => n.name)).toEqual(['one']);
    expect(second.pageInfo.hasNextPage).toBe(false);

    const bad = await graphql(signet, q, { ns, since: 'yesterday' });
    expect(bad.errors?.[0]).toMatchObject({ message: expect.stringMatching(/Variable "\$since".*is not an RFC 3339 date-time/), extensions: { code: 'BAD_USER_INPUT' } });
    expect((await graphql(signet, q, { ns, after: 'bm90LWEtY3Vyc29y' })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    await stop(signet);
  });

  it('survives a restart: what was answered just before a graceful stop is written on the way down', async () => {
    const signet = await start();
    const reviews = Array.from({ length: 20 }, (_, i) => podReview({ namespace: 'restart', name: `pod-${i}`, images: [KNOWN] }));
    for (const r of reviews) {
      expect((await validate(signet, r)).allowed).toBe(true);
    }
    // Stopped at once, within the flush interval: the stop writes what waits.
    await stop(signet);
    expect(await rows(reviews.map((r) => r.request.uid))).toHaveLength(20);
    const again = await start();
    type Page = { admissions: { totalCount: number } };
    expect((await graphql<Page>(again, '{ admissions(namespace: "restart") { totalCount } }')).data!.admissions.totalCount).toBe(20);
    await stop(again);
  });

  it('survives a Postgres outage within its buffer, and counts what the bound forced it to drop', async () => {
    const BUFFER = 10;
    const signet = await start({ SIGNET_ADMISSION_RECORD_BUFFER: String(BUFFER) });
    // Warm: the known image is in the decision table before Postgres goes.
    expect((await validate(signet, podReview({ namespace: 'outage', name: 'warm', images: [KNOWN] }))).allowed).toBe(true);
    await eventually(async () => ((await metric(signet, 'signet_admission_records_pending')) === 0 ? true : undefined), 'the warm-up record written');

    proxy.cut();
    const reviews = Array.from({ length: 25 }, (_, i) => podReview({ namespace: 'outage', name: `pod-${i}`, images: [KNOWN] }));
    for (const r of reviews) {
      // Answered from memory, as before the outage.
      expect(await validate(signet, r)).toMatchObject({ uid: r.request.uid, allowed: true });
    }
    expect(await metric(signet, 'signet_admission_records_pending')).toBe(BUFFER);
    expect(await metric(signet, 'signet_admission_records_dropped_total{cause="buffer_full"}')).toBe(25 - BUFFER);
    expect(await metric(signet, 'signet_admission_requests_total{result="allowed",reason="verified"}')).toBe(26);

    proxy.restore();
    const kept = await recorded(reviews.slice(0, BUFFER).map((r) => r.request.uid));
    // The first BUFFER answered during the outage are kept, in order; the rest were counted, not written.
    expect(kept.map((r) => r.name)).toEqual(reviews.slice(0, BUFFER).map((r) => r.request.uid).map((_, i) => `pod-${i}`));
    expect(await rows(reviews.slice(BUFFER).map((r) => r.request.uid))).toEqual([]);
    expect(await metric(signet, 'signet_admission_records_pending')).toBe(0);
    expect(await metric(signet, 'signet_admission_records_dropped_total{cause="buffer_full"}')).toBe(25 - BUFFER);
    await stop(signet);
  });
});

describe('the admission record writer, stopped while Postgres is down', () => {
  it('counts what it could not write before stopping as dropped (shutdown), and writes nothing twice', async () => {
    const writerDb = createDb(env.DATABASE_URL!, createLogger({ logLevel: 'silent' }));
    const metrics = createMetrics();
    const writer = new BatchedAdmissionRecorder({ db: writerDb, metrics, log: createLogger({ logLevel: 'silent' }), bufferSize: 100, address: 'test', flushMs: 50 });
    writer.start();
    const outcome = (name: string) =>
      enforcedOutcome(podReview({ namespace: 'stopping', name, images: [KNOWN] }).request as never, [
        { image: KNOWN, digest: known, allowed: true, reason: 'verified', message: '', signers: [], policyVersion: 'v', verifiedAt: null, stale: false, mode: 'enforce', scope: null },
      ]);
    try {
      writer.record(outcome('before'));
      await eventually(() => Promise.resolve(writer.pending === 0 ? true : undefined), 'the first record written');
      proxy.cut();
      for (const name of ['a', 'b', 'c']) {
        writer.record(outcome(name));
      }
      expect(await writer.stop(500)).toBe(3);
      const text = await metrics.registry.metrics();
      expect(text).toContain('signet_admission_records_dropped_total{cause="shutdown"} 3');
      expect(text).toContain('signet_admission_records_written_total 1');
    } finally {
      proxy.restore();
      await writerDb.destroy();
    }
    const names = (await db.db.selectFrom('admission_records').select('name').where('namespace', '=', 'stopping').execute()).map((r) => r.name);
    expect(names).toEqual(['before']);
  });
});

describe('policy metrics', () => {
  it('shows the policy in force, and counts a reload that failed (the policy in force stays)', async () => {
    const signet = await start();
    const version = parsePolicy(POLICY).version;
    expect(await metric(signet, `signet_policy_info{version="${version}"}`)).toBe(1);
    expect(await metric(signet, 'signet_policy_reload_failures_total')).toBe(0);
    await writeFile(join(tmp, 'policy.yaml'), 'allow_with_verification: [not, a, map]\n');
    try {
      expect(await signet.reloadPolicy()).toBe(version);
      // The file is also polled: its own reload of the broken file may count once more.
      expect(await metric(signet, 'signet_policy_reload_failures_total')).toBeGreaterThanOrEqual(1);
      expect(await metric(signet, `signet_policy_info{version="${version}"}`)).toBe(1);
    } finally {
      await writeFile(join(tmp, 'policy.yaml'), POLICY);
    }
    await stop(signet);
  });
});

describe('retention', () => {
  it('the worker prunes records older than SIGNET_ADMISSION_RETENTION and keeps younger ones (deliveries kept forever)', async () => {
    const DAY = 86_400_000;
    const aged = (name: string, days: number) => ({ ...enforcedOutcome(podReview({ namespace: 'retention', name, images: [KNOWN] }).request as never, []), at: new Date(Date.now() - days * DAY) });
    await admissions.insertMany(db.db, [aged('old', 31), aged('older', 400), aged('young', 29)]);
    const worker = await startTestSignet({ DATABASE_URL: db.url, SIGNET_ROLES: 'worker', SIGNET_RECONCILE_INTERVAL: '0', SIGNET_DELIVERY_RETENTION: '0', SIGNET_ADMISSION_RETENTION: '30d' });
    const names = async () => (await db.db.selectFrom('admission_records').select('name').where('namespace', '=', 'retention').orderBy('name').execute()).map((r) => r.name);
    try {
      await eventually(async () => ((await names()).length === 1 ? true : undefined), 'the old records pruned');
    } finally {
      await worker.stop();
    }
    expect(await names()).toEqual(['young']);
  });
});
