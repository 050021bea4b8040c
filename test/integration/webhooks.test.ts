// Every webhook source through the HTTP edge against real Postgres and Redis: the published
// payloads, each source's authentication, replays, and the published examples that are invalid.
// The last part runs all roles against a real registry: a tag-only push is resolved and indexed.
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../../services/common/domain/digest.ts';
import { readFixture } from '../helpers/fixtures.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { harborCloudEventsPush, pubsubPush } from '../helpers/webhooks.ts';

const GITHUB_SECRET = 'github-secret-0123456789abcdef';
const HARBOR_SECRET = 'harbor-secret-0123456789abcdef';

let db: TestDb;
let signet: TestSignet;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'signet-webhooks-'));
  await writeFile(join(tmp, 'registries.yaml'), `registries:\n  - host: harbor.example.com\n    webhook: { source: harbor, secret: ${HARBOR_SECRET} }\n`);
  db = await createTestDb();
  signet = await startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_ROLES: 'ingest',
    SIGNET_WEBHOOK_SECRET_GITHUB: GITHUB_SECRET,
    SIGNET_REGISTRIES_FILE: join(tmp, 'registries.yaml'),
    // The registries the published payloads name (harbor.example.com comes from the file).
    SIGNET_ALLOWED_REGISTRIES: 'registrycluster.local,localhost,docker.io,quay.io,ghcr.io,*.azurecr.io,*.dkr.ecr.us-east-1.amazonaws.com,*.dkr.ecr.us-west-2.amazonaws.com,*.pkg.dev',
  });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

afterEach(async () => {
  await signet.queue!.obliterate({ force: true });
});

function post(s: TestSignet, source: string, payload: string | Buffer, headers: Record<string, string> = {}, query = '') {
  return s.app.inject({
    method: 'POST',
    url: `/webhooks/${source}${query}`,
    headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': 'application/json', ...headers },
    payload,
  });
}

function githubHeaders(body: Buffer | string, secret = GITHUB_SECRET, delivery = '72d3162e-cc78-11e3-81ab-4c9367dc0958') {
  return {
    authorization: '',
    'x-github-event': 'package',
    'x-github-delivery': delivery,
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  };
}

async function deliveryCount(): Promise<number> {
  const r = await db.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

async function queuedData(res: { json: <T>() => T }) {
  const { queued } = res.json<{ queued: string[] }>();
  return Promise.all(queued.map(async (id) => ({ id, name: (await signet.queue!.getJob(id))?.name, data: (await signet.queue!.getJob(id))?.data })));
}

const HARBOR_DIGEST = 'sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4';
const GITHUB_PACKAGE = readFixture('webhooks/github/package.published.docker.payload.json');

describe('each source on its published payloads', () => {
  it.each([
    ['distribution', 'distribution/v3-push-envelope.events.v2+json.json', {}, { name: 'index-manifest', data: { registry: 'registrycluster.local', repository: 'library/test' } }],
    ['harbor', 'harbor/push-artifact.default.json', {}, { name: 'index-manifest', data: { registry: 'localhost', repository: 'harbor/alpine', digest: HARBOR_DIGEST } }],
    ['dockerhub', 'dockerhub/push.json', {}, { name: 'resolve-tag', data: { registry: 'docker.io', repository: 'svendowideit/testhook', tag: 'latest', source: 'dockerhub', eventId: 'svendowideit/testhook:latest@1417566161' } }],
    ['quay', 'quay/repo_push.json', {}, { name: 'resolve-tag', data: { registry: 'quay.io', repository: 'dgangaia/test', tag: 'latest', source: 'quay' } }],
    // A digest pushed under a tag: the tag is resolved in the registry, the digest only a hint it confirms.
    ['acr', 'azure-acr/webhook-push.2017-docs.json', {}, { name: 'resolve-tag', data: { registry: 'myregistry.azurecr.io', repository: 'hello-world', tag: 'v1', digest: 'sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d' } }],
    ['acr', 'azure-acr/eventgrid-ImagePushed.2018-docs.json', {}, { name: 'resolve-tag', data: { registry: 'demo.azurecr.io', repository: 'aci-helloworld', tag: 'v1', digest: 'sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5' } }],
    ['acr', 'azure-acr/webhook-push.2023-docs.json', {}, { name: 'resolve-tag', data: { registry: 'myregistry.azurecr.io', tag: 'v1' } }],
    ['ecr', 'aws-ecr/image-action.push.json', {}, { name: 'resolve-tag', data: { registry: '123456789012.dkr.ecr.us-west-2.amazonaws.com', tag: 'latest', eventId: '13cde686-328b-6117-af20-0e5566167482' } }],
    ['github', 'github/package.published.docker.payload.json', githubHeaders(GITHUB_PACKAGE), { name: 'index-manifest', data: { registry: 'ghcr.io', repository: 'codertocat/hello-world' } }],
  ])('%s: %s → one job, 202, delivery recorded', async (source, file, headers, expected) => {
    const before = await deliveryCount();
    const res = await post(signet, source, readFixture(`webhooks/${file}`), headers);
    expect(res.statusCode, res.body).toBe(202);
    const jobs = await queuedData(res);
    expect(jobs).toEqual([{ id: expect.any(String), ...expected, data: expect.objectContaining(expected.data) }]);
    expect(await deliveryCount()).toBe(before + 1);
  });

  it('gar: a Pub/Sub push of an INSERT (no published example: the documented shape)', async () => {
    const body = JSON.stringify(pubsubPush({ action: 'INSERT', digest: `us-docker.pkg.dev/p/r/img@sha256:${'6e'.repeat(32)}`, tag: 'us-docker.pkg.dev/p/r/img:v1' }));
    const res = await post(signet, 'gar', body, { authorization: '' }, `?token=${TEST_WEBHOOK_TOKEN}`);
    expect(res.statusCode, res.body).toBe(202);
    // The tag is the registry's to confirm; the message's digest is only a hint, never recorded as the tag.
    expect(await queuedData(res)).toEqual([
      expect.objectContaining({ name: 'resolve-tag', data: expect.objectContaining({ registry: 'us-docker.pkg.dev', repository: 'p/r/img', tag: 'v1', digest: `sha256:${'6e'.repeat(32)}` }) }),
    ]);
    const tag = await db.db.selectFrom('tags').select(['name', 'digest']).where('digest', '=', parseDigest(`sha256:${'6e'.repeat(32)}`)).execute();
    expect(tag).toEqual([]);
  });

  it('harbor: the CloudEvents push (comments removed) queues the same job as the Default format', async () => {
    const [cloud] = await queuedData(await post(signet, 'harbor', harborCloudEventsPush(), { 'content-type': 'application/cloudevents+json' }));
    const [plain] = await queuedData(await post(signet, 'harbor', readFixture('webhooks/harbor/push-artifact.default.json')));
    expect(cloud!.id).toBe(plain!.id);
  });

  it('harbor: a delete marks nothing it does not know, and pulls and scans are ignored with 202', async () => {
    for (const file of ['delete-artifact.default.json', 'delete-artifact.cloudevents.json', 'pull-artifact.default.json', 'scanning-completed.default.json']) {
      const res = await post(signet, 'harbor', readFixture(`webhooks/harbor/${file}`));
      expect(res.statusCode, file).toBe(202);
      expect(res.json()).toMatchObject({ queued: [] });
    }
  });

  it('harbor: a secret from the registries file names its registry, whatever resource_url says', async () => {
    const res = await post(signet, 'harbor', readFixture('webhooks/harbor/push-artifact.default.json'), { authorization: HARBOR_SECRET });
    expect(res.statusCode).toBe(202);
    expect(await queuedData(res)).toEqual([expect.objectContaining({ data: expect.objectContaining({ registry: 'harbor.example.com' }) })]);
  });
});

describe('the published examples that are invalid are refused with a clear 400 and change nothing', () => {
  it.each([
    ['harbor', 'harbor/push-artifact.cloudevents.jsonc', 'body is not JSON'],
    ['ecr', 'aws-ecr/image-action.delete.json', 'never guesses which manifest was deleted'],
    ['acr', 'azure-acr/webhook-delete.2023-docs.json', 'is not a sha256 digest'],
  ])('%s: %s', async (source, file, message) => {
    const before = await deliveryCount();
    const res = await post(signet, source, readFixture(`webhooks/${file}`));
    expect(res.statusCode).toBe(400);
    expect(res.json<{ message: string }>().message).toContain(message);
    expect(await deliveryCount()).toBe(before);
    expect(await signet.queue!.count()).toBe(0);
  });
});

describe('authentication', () => {
  it.each([
    ['distribution', 'distribution/v3-push-envelope.events.v2+json.json'],
    ['harbor', 'harbor/push-artifact.default.json'],
    ['dockerhub', 'dockerhub/push.json'],
    ['quay', 'quay/repo_push.json'],
    ['acr', 'azure-acr/webhook-push.2017-docs.json'],
    ['ecr', 'aws-ecr/image-action.push.json'],
  ])('%s: a wrong secret is 401 and records nothing', async (source, file) => {
    const before = await deliveryCount();
    for (const headers of [{ authorization: 'Bearer wrong-secret-wrong-secret' }, { authorization: '' }]) {
      const res = await post(signet, source, readFixture(`webhooks/${file}`), headers);
      expect(res.statusCode).toBe(401);
    }
    expect((await post(signet, source, readFixture(`webhooks/${file}`), { authorization: '' }, '?token=wrong-secret-wrong')).statusCode).toBe(401);
    expect(await deliveryCount()).toBe(before);
    expect(await signet.queue!.count()).toBe(0);
  });

  it('url-token sources accept ?token=, header sources do not', async () => {
    const query = `?token=${TEST_WEBHOOK_TOKEN}`;
    expect((await post(signet, 'quay', readFixture('webhooks/quay/repo_push.json'), { authorization: '' }, query)).statusCode).toBe(202);
    expect((await post(signet, 'ecr', readFixture('webhooks/aws-ecr/image-action.push.json'), { authorization: '' }, query)).statusCode).toBe(401);
  });

  it('github: a wrong, missing or other-body signature is 401; the bearer token is no substitute', async () => {
    const before = await deliveryCount();
    const cases = [
      githubHeaders(GITHUB_PACKAGE, 'wrong-secret-wrong-secret'),
      { ...githubHeaders(GITHUB_PACKAGE), 'x-hub-signature-256': '' },
      { ...githubHeaders(GITHUB_PACKAGE), 'x-hub-signature-256': 'sha1=abc' },
      githubHeaders(Buffer.concat([GITHUB_PACKAGE, Buffer.from(' ')])),
      { authorization: `Bearer ${GITHUB_SECRET}`, 'x-github-event': 'package' },
    ];
    for (const headers of cases) {
      const res = await post(signet, 'github', GITHUB_PACKAGE, headers);
      expect(res.statusCode).toBe(401);
      expect(res.json<{ message: string }>().message).toMatch(/X-Hub-Signature-256/);
    }
    expect(await deliveryCount()).toBe(before);
  });
});

describe('replays and redeliveries never double-queue', () => {
  it.each([
    ['github', GITHUB_PACKAGE, githubHeaders(GITHUB_PACKAGE)],
    ['dockerhub', readFixture('webhooks/dockerhub/push.json'), {}],
    ['quay', readFixture('webhooks/quay/repo_push.json'), {}],
    ['ecr', readFixture('webhooks/aws-ecr/image-action.push.json'), {}],
    ['gar', Buffer.from(JSON.stringify(pubsubPush({ action: 'INSERT', tag: 'us-docker.pkg.dev/p/r/img:v1' }))), {}],
  ])('%s', async (source, body, headers) => {
    const first = await post(signet, source, body, headers);
    const again = await post(signet, source, body, headers);
    expect(first.statusCode).toBe(202);
    expect(again.json()).toEqual(first.json());
    const counts = await signet.queue!.getJobCounts('waiting', 'active', 'delayed', 'completed');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('a new Docker Hub push of the same tag (new pushed_at) is resolved again', async () => {
    const body = JSON.parse(readFixture('webhooks/dockerhub/push.json').toString()) as { push_data: { pushed_at: number } };
    const first = await post(signet, 'dockerhub', JSON.stringify(body));
    body.push_data.pushed_at += 60;
    const later = await post(signet, 'dockerhub', JSON.stringify(body));
    expect(later.json<{ queued: string[] }>().queued[0]).not.toBe(first.json<{ queued: string[] }>().queued[0]);
  });
});

describe('a real registry notifying Signet', () => {
  // Stands in for Docker Hub: the registries file binds it to the Docker Hub secret, so it takes
  // Docker Hub deliveries only (its own distribution notifications would be refused: it does not send any).
  let registry: RunningRegistry;
  // A registry no secret is bound to, notifying with the shared token.
  let notifying: RunningRegistry;
  let full: TestSignet;
  let fullDb: TestDb;

  beforeAll(async () => {
    const [port, notifyingPort] = [await freePort(), await freePort()];
    fullDb = await createTestDb();
    await writeFile(join(tmp, 'dockerhub.yaml'), `registries:\n  - host: 127.0.0.1:${port}\n    insecure: true\n    webhook: { source: dockerhub, secret: ${HARBOR_SECRET} }\n`);
    full = await startTestSignet({
      DATABASE_URL: fullDb.url,
      SIGNET_REGISTRIES_FILE: join(tmp, 'dockerhub.yaml'),
      SIGNET_INSECURE_REGISTRIES: `127.0.0.1:${notifyingPort}`,
      SIGNET_RECONCILE_INTERVAL: '0',
    });
    await full.queue!.obliterate({ force: true });
    registry = await startRegistry({ port });
    notifying = await startRegistry({ port: notifyingPort, notifications: { url: `${full.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });
  });

  afterAll(async () => {
    await registry?.stop();
    await notifying?.stop();
    await full?.stop();
    await fullDb?.drop();
  });

  function manifest(digest: string) {
    return fullDb.db.selectFrom('manifests').select(['digest', 'status', 'deleted_at']).where('digest', '=', parseDigest(digest)).executeTakeFirst();
  }

  it('resolves a tag-only push (Docker Hub) in the registry, records it and indexes the digest once', async () => {
    const image = await pushRandomImage(registry.url, 'svendowideit/testhook', 'latest');
    const res = await post(full, 'dockerhub', readFixture('webhooks/dockerhub/push.json'), { authorization: '' }, `?token=${HARBOR_SECRET}`);
    expect(res.statusCode, res.body).toBe(202);
    const row = await eventually(
      () =>
        fullDb.db
          .selectFrom('manifests')
          .select(['digest', 'status'])
          .where('digest', '=', image.digest)
          .executeTakeFirst(),
      'the resolved digest indexed',
    );
    expect(row).toEqual({ digest: image.digest, status: 'unsigned' });
    const tags = await fullDb.db.selectFrom('tags').select(['name', 'digest']).execute();
    expect(tags).toEqual([{ name: 'latest', digest: image.digest }]);
    // The resolved tag's digest is indexed once.
    const jobs = await full.queue!.getJobs(['completed', 'active', 'waiting', 'delayed']);
    expect(jobs.filter((j) => j.name === 'index-manifest' && (j.data as { digest: string }).digest === image.digest)).toHaveLength(1);
  });

  it('marks a deleted manifest, keeps its rows and history, unmarks it when pushed again, and records tag moves', async () => {
    const registry = notifying;
    const repo = 'team/deleted';
    const first = await pushRandomImage(registry.url, repo, 'v1');
    await eventually(async () => (await manifest(first.digest)) ?? undefined, 'first image indexed');
    const second = await pushRandomImage(registry.url, repo, 'v1');
    await eventually(async () => (await manifest(second.digest)) ?? undefined, 'second image indexed');

    const del = await fetch(`${registry.url}/v2/${repo}/manifests/${first.digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const marked = await eventually(async () => {
      const row = await manifest(first.digest);
      return row?.deleted_at === null ? undefined : row;
    }, 'the delete notification marks the manifest');
    expect(marked).toMatchObject({ digest: first.digest, status: 'unsigned' });

    const history = await fullDb.db
      .selectFrom('tag_history as h')
      .innerJoin('repositories as r', 'r.id', 'h.repository_id')
      .select(['h.digest', 'h.previous_digest'])
      .where('r.name', '=', repo)
      .orderBy('h.id')
      .execute();
    expect(history).toEqual([
      { digest: first.digest, previous_digest: null },
      { digest: second.digest, previous_digest: first.digest },
    ]);

    // The same bytes pushed again: the manifest exists again.
    const res = await fetch(`${registry.url}/v2/${repo}/manifests/${first.digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: new Uint8Array(first.bytes),
    });
    expect(res.status).toBe(201);
    await eventually(async () => ((await manifest(first.digest))?.deleted_at === null ? true : undefined), 're-push unmarks the manifest');
  });
});
