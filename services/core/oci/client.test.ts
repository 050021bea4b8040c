import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../common/domain/digest.ts';
import { startRegistry, type RunningRegistry } from '../../../test/helpers/registry.ts';
import { pushBlob, pushIndex, pushManifest, pushRandomImage } from '../../../test/helpers/oci-push.ts';
import { credentialStoreFrom, parseDockerConfig } from './auth.ts';
import { createRegistryClient, RegistryRateLimitError, type RegistryClientOptions } from './client.ts';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST } from './media-types.ts';
import { rejection } from '../../../test/helpers/registry-errors.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(s) });

function client(overrides: Partial<RegistryClientOptions> = {}) {
  return createRegistryClient({
    insecureHosts: [],
    timeoutMs: 10_000,
    retries: 2,
    maxManifestBytes: 64 * 1024,
    log,
    ...overrides,
  });
}


interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  readonly accept: string | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/** An in-process HTTP server on 127.0.0.1:0 whose behaviour each test sets; records every request. */
interface Fake {
  readonly host: string;
  readonly url: string;
  readonly requests: Recorded[];
  handle(h: Handler): void;
  close(): Promise<void>;
}

async function startFake(): Promise<Fake> {
  let handler: Handler = (_req, res) => {
    res.writeHead(500).end();
  };
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://fake');
    requests.push({
      method: req.method ?? '',
      path: u.pathname,
      query: u.searchParams,
      authorization: req.headers.authorization,
      accept: req.headers.accept,
    });
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    handle(h) {
      handler = h;
      requests.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const imageManifest = (): Buffer =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256Digest(randomBytes(8)), size: 8 },
      layers: [{ mediaType: OCI_LAYER_GZIP, digest: sha256Digest(randomBytes(8)), size: 8 }],
    }),
  );

function serveManifest(res: ServerResponse, body: Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(body.length), ...extra }).end(body);
}

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

// ---------------------------------------------------------------------------------------------
// Against a real registry (CNCF distribution 2.8)

describe('against docker-registry', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('fetches an OCI image manifest by tag and by digest', async () => {
    const img = await pushRandomImage(reg.url, 'signet/app', 'v1');
    const c = client({ insecureHosts: [reg.host] });

    const byTag = await c.getManifest(reg.host, 'signet/app', 'v1');
    expect(byTag.digest).toBe(img.digest);
    expect(byTag.mediaType).toBe(OCI_MANIFEST);
    expect(byTag.bytes.equals(img.bytes)).toBe(true);
    expect(byTag.manifest.kind).toBe('image');
    if (byTag.manifest.kind === 'image') {
      expect(byTag.manifest.config.digest).toBe(img.config.digest);
      expect(byTag.manifest.layers.map((l) => l.digest)).toEqual([img.layer.digest]);
    }

    const byDigest = await c.getManifest(reg.host.toUpperCase(), 'signet/app', img.digest);
    expect(byDigest.digest).toBe(img.digest);
    expect(byDigest.bytes.equals(img.bytes)).toBe(true);
  });

  it('reaches a registry by its configured endpoint when its name is not reachable', async () => {
    const img = await pushRandomImage(reg.url, 'signet/aliased', 'v1');
    // The name clients use (and the ledger keys by) resolves nowhere; the endpoint is the real registry.
    const c = client({ endpoints: { 'registry.invalid:5000': reg.url } });
    const got = await c.getManifest('registry.invalid:5000', 'signet/aliased', img.digest);
    expect(got.digest).toBe(img.digest);
    expect(await c.getBlob('registry.invalid:5000', 'signet/aliased', img.layer.digest, 1 << 20)).toEqual(img.layer.bytes);
  });

  it('fetches an OCI index and its platform manifests', async () => {
    const idx = await pushIndex(reg.url, 'signet/multi', 'latest');
    const c = client({ insecureHosts: [reg.host] });
    const got = await c.getManifest(reg.host, 'signet/multi', 'latest');
    expect(got.digest).toBe(idx.digest);
    expect(got.mediaType).toBe(OCI_INDEX);
    expect(got.manifest.kind).toBe('index');
    if (got.manifest.kind !== 'index') {
      return;
    }
    expect(got.manifest.manifests.map((m) => [m.platform?.architecture, m.platform?.variant])).toEqual([
      ['amd64', undefined],
      ['arm64', 'v8'],
    ]);
    const child = await c.getManifest(reg.host, 'signet/multi', got.manifest.manifests[1]!.digest);
    expect(child.digest).toBe(idx.images[1]!.digest);
    expect(child.manifest.kind).toBe('image');
  });

  it('maps unknown tags, digests, repositories and blobs to NOT_FOUND', async () => {
    await pushRandomImage(reg.url, 'signet/nf', 'v1');
    const c = client({ insecureHosts: [reg.host] });
    for (const [repo, ref] of [
      ['signet/nf', 'nope'],
      ['signet/nf', sha256Digest('absent')],
      ['signet/never-pushed', 'v1'],
    ] as const) {
      const err = await rejection(c.getManifest(reg.host, repo, ref));
      expect(err.code).toBe('NOT_FOUND');
      expect(err.status).toBe(404);
    }
    const err = await rejection(c.getBlob(reg.host, 'signet/nf', sha256Digest('absent'), 1024));
    expect(err.code).toBe('NOT_FOUND');
  });

  it('reports a deleted manifest as NOT_FOUND', async () => {
    const img = await pushRandomImage(reg.url, 'signet/deleted', 'v1');
    const c = client({ insecureHosts: [reg.host] });
    await c.getManifest(reg.host, 'signet/deleted', img.digest);
    const del = await fetch(`${reg.url}/v2/signet/deleted/manifests/${img.digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect((await rejection(c.getManifest(reg.host, 'signet/deleted', img.digest))).code).toBe('NOT_FOUND');
    expect((await rejection(c.getManifest(reg.host, 'signet/deleted', 'v1'))).code).toBe('NOT_FOUND');
  });

  it('getBlob returns verified bytes and enforces the size cap', async () => {
    const bytes = randomBytes(4096);
    const digest = await pushBlob(reg.url, 'signet/blobs', bytes);
    const c = client({ insecureHosts: [reg.host] });
    expect((await c.getBlob(reg.host, 'signet/blobs', digest, 4096)).equals(bytes)).toBe(true);
    const err = await rejection(c.getBlob(reg.host, 'signet/blobs', digest, 4095));
    expect(err.code).toBe('TOO_LARGE');
  });

  it('refuses a manifest over maxManifestBytes', async () => {
    const img = await pushRandomImage(reg.url, 'signet/cap', 'v1');
    const c = client({ insecureHosts: [reg.host], maxManifestBytes: img.bytes.length - 1 });
    expect((await rejection(c.getManifest(reg.host, 'signet/cap', 'v1'))).code).toBe('TOO_LARGE');
  });

  it('fetches a Docker v2 manifest pushed with its media type', async () => {
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const cfgDigest = await pushBlob(reg.url, 'signet/docker', cfg);
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: cfgDigest, size: cfg.length },
      layers: [],
    };
    const digest = await pushManifest(reg.url, 'signet/docker', 'v2', manifest, manifest.mediaType);
    const got = await client({ insecureHosts: [reg.host] }).getManifest(reg.host, 'signet/docker', 'v2');
    expect(got.digest).toBe(digest);
    expect(got.mediaType).toBe(manifest.mediaType);
  });

  describe('with htpasswd (Basic challenge)', () => {
    const user = { username: 'signet', password: 'pa:ss wörd' };
    let secured: RunningRegistry;
    beforeAll(async () => {
      secured = await startRegistry({ htpasswd: user });
    });
    afterAll(async () => {
      await secured?.stop();
    });

    it('answers the challenge with the configured credentials', async () => {
      const img = await pushRandomImage(secured.url, 'private/app', 'v1', { auth: user });
      const credentials = credentialStoreFrom([[secured.host, user]]);
      const c = client({ insecureHosts: [secured.host], credentials });
      expect((await c.getManifest(secured.host, 'private/app', 'v1')).digest).toBe(img.digest);
      expect((await c.getBlob(secured.host, 'private/app', img.layer.digest, 1 << 20)).equals(img.layer.bytes)).toBe(true);
    });

    it('is UNAUTHORIZED without or with wrong credentials', async () => {
      await pushRandomImage(secured.url, 'private/app2', 'v1', { auth: user });
      const anon = client({ insecureHosts: [secured.host] });
      expect((await rejection(anon.getManifest(secured.host, 'private/app2', 'v1'))).code).toBe('UNAUTHORIZED');
      const wrong = client({
        insecureHosts: [secured.host],
        credentials: credentialStoreFrom([[secured.host, { username: 'signet', password: 'nope' }]]),
      });
      const err = await rejection(wrong.getManifest(secured.host, 'private/app2', 'v1'));
      expect(err.code).toBe('UNAUTHORIZED');
      expect(err.status).toBe(401);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Input validation: no network I/O at all

describe('validation', () => {
  let fake: Fake;
  beforeAll(async () => {
    fake = await startFake();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('rejects bad hosts, repositories and references before any request', async () => {
    fake.handle((_req, res) => serveManifest(res, imageManifest()));
    const c = client({ insecureHosts: [fake.host] });
    const bad: [string, string, string][] = [
      ['user@127.0.0.1', 'a/b', 'v1'],
      [`${fake.host}/x`, 'a/b', 'v1'],
      ['127.0.0.1:99999', 'a/b', 'v1'],
      ['-bad.example', 'a/b', 'v1'],
      ['', 'a/b', 'v1'],
      [fake.host, 'Upper/case', 'v1'],
      [fake.host, 'a//b', 'v1'],
      [fake.host, '../etc', 'v1'],
      [fake.host, 'a/b/', 'v1'],
      [fake.host, 'a/b?x=1', 'v1'],
      [fake.host, 'a-/b', 'v1'],
      [fake.host, 'a/b', '../../v2'],
      [fake.host, 'a/b', '.hidden'],
      [fake.host, 'a/b', 'x'.repeat(129)],
      [fake.host, 'a/b', `sha512:${'a'.repeat(128)}`],
      [fake.host, 'a/b', 'sha256:abc'],
    ];
    for (const [host, repo, ref] of bad) {
      const err = await rejection(c.getManifest(host, repo, ref));
      expect(err.code, `${host} ${repo} ${ref}`).toBe('INVALID');
    }
    const err = await rejection(c.getBlob(fake.host, 'a/b', 'sha256:zz' as Digest, 10));
    expect(err.code).toBe('INVALID');
    expect(fake.requests).toEqual([]);
  });

  it('accepts distribution-grammar names', async () => {
    const body = imageManifest();
    fake.handle((_req, res) => serveManifest(res, body));
    const c = client({ insecureHosts: [fake.host] });
    for (const repo of ['a', 'a/b/c', 'my_app', 'my__app', 'my.app', 'my---app', 'a0/b1-c2.d3_e4']) {
      await expect(c.getManifest(fake.host, repo, 'v1.0_rc-1')).resolves.toMatchObject({ digest: sha256Digest(body) });
    }
    expect(fake.requests.map((r) => r.path)).toContain('/v2/a0/b1-c2.d3_e4/manifests/v1.0_rc-1');
  });
});

// ---------------------------------------------------------------------------------------------
// Faults the real registry cannot produce on demand

describe('against a fake registry', () => {
  let fake: Fake;
  let storage: Fake;
  beforeAll(async () => {
    fake = await startFake();
    storage = await startFake();
  });
  afterAll(async () => {
    await fake.close();
    await storage.close();
  });
  beforeEach(() => {
    logLines.length = 0;
  });
  afterEach(() => {
    fake.handle((_req, res) => {
      res.writeHead(500).end();
    });
  });

  const c = (o: Partial<RegistryClientOptions> = {}) => client({ insecureHosts: [fake.host, storage.host], ...o });

  it('sends the Accept header for all four manifest media types', async () => {
    const body = imageManifest();
    fake.handle((_req, res) => serveManifest(res, body));
    await c().getManifest(fake.host, 'a/b', 'v1');
    const accept = fake.requests[0]?.accept ?? '';
    for (const t of [
      OCI_MANIFEST,
      OCI_INDEX,
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.docker.distribution.manifest.list.v2+json',
    ]) {
      expect(accept).toContain(t);
    }
  });

  it('retries 503 twice then succeeds', async () => {
    const body = imageManifest();
    fake.handle((_req, res, n) => {
      if (n <= 2) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}');
      } else {
        serveManifest(res, body);
      }
    });
    const got = await c({ retries: 2 }).getManifest(fake.host, 'a/b', 'v1');
    expect(got.digest).toBe(sha256Digest(body));
    expect(fake.requests).toHaveLength(3);
  });

  it('gives up with TRANSIENT when 5xx persists past the retries', async () => {
    fake.handle((_req, res) => {
      res.writeHead(502).end('bad gateway');
    });
    const err = await rejection(c({ retries: 1 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TRANSIENT');
    expect(err.transient).toBe(true);
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/gave up after 2 attempts/);
    expect(fake.requests).toHaveLength(2);
  });

  it('honours 429 Retry-After: 1 and then succeeds', async () => {
    const body = imageManifest();
    fake.handle((_req, res, n) => {
      if (n === 1) {
        res.writeHead(429, { 'retry-after': '1' }).end();
      } else {
        serveManifest(res, body);
      }
    });
    const got = await c({ retries: 1 }).getManifest(fake.host, 'a/b', 'v1');
    expect(got.digest).toBe(sha256Digest(body));
    expect(fake.requests).toHaveLength(2);
  });

  it('does not wait in-process for a long Retry-After: TRANSIENT carrying the delay', async () => {
    const when = new Date(Date.now() + 120_000).toUTCString();
    for (const retryAfter of ['120', when]) {
      fake.handle((_req, res) => {
        res.writeHead(429, { 'retry-after': retryAfter }).end();
      });
      const err = await rejection(c({ retries: 3 }).getManifest(fake.host, 'a/b', 'v1'));
      expect(err).toBeInstanceOf(RegistryRateLimitError);
      expect(err.code).toBe('TRANSIENT');
      expect(err.status).toBe(429);
      expect((err as RegistryRateLimitError).retryAfterMs).toBeGreaterThan(100_000);
      expect(err.message).toMatch(/retry after 1[12]\d s/);
      expect(fake.requests).toHaveLength(1);
    }
  });

  it('times out a registry that never answers (TRANSIENT)', async () => {
    fake.handle(() => {
      // never respond
    });
    const err = await rejection(c({ timeoutMs: 250, retries: 1 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TRANSIENT');
    expect(err.message).toMatch(/did not answer within 250 ms/);
    expect(fake.requests).toHaveLength(2);
  });

  it('the timeout also covers a body that stalls after the headers', async () => {
    fake.handle((_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': '1000' });
      res.write('{"schemaVersion":2,');
    });
    const err = await rejection(c({ timeoutMs: 250, retries: 0 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TRANSIENT');
    expect(err.message).toMatch(/did not answer within/);
  });

  it('retries connection errors and reports TRANSIENT', async () => {
    fake.handle((req) => {
      req.socket.destroy();
    });
    const err = await rejection(c({ retries: 1 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TRANSIENT');
    expect(err.message).toMatch(/connection to .* failed/);
    expect(fake.requests).toHaveLength(2);
  });

  it('refuses an oversized body announced by Content-Length', async () => {
    fake.handle((_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(10 * 1024 * 1024) });
      res.write(Buffer.alloc(1024));
      // never finishes: the client must not wait for the rest
    });
    const err = await rejection(c({ maxManifestBytes: 4096 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TOO_LARGE');
    expect(err.message).toMatch(/Content-Length 10485760 exceeds the limit of 4096/);
    expect(fake.requests).toHaveLength(1);
  });

  it('refuses an oversized streamed body without Content-Length', async () => {
    fake.handle((_req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST }); // chunked
      const chunk = Buffer.alloc(1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 1024 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const err = await rejection(c({ maxManifestBytes: 8192 }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TOO_LARGE');
    expect(err.message).toMatch(/body exceeds the limit of 8192/);
    const blobErr = await rejection(c().getBlob(fake.host, 'a/b', sha256Digest('x'), 8192));
    expect(blobErr.code).toBe('TOO_LARGE');
  });

  it('refuses bytes that do not match the requested digest', async () => {
    const body = imageManifest();
    const other = sha256Digest('something else');
    fake.handle((_req, res) => serveManifest(res, body));
    const err = await rejection(c().getManifest(fake.host, 'a/b', other));
    expect(err.code).toBe('INVALID');
    expect(err.message).toMatch(/digest mismatch/);
    const blobErr = await rejection(c().getBlob(fake.host, 'a/b', other, 1 << 20));
    expect(blobErr.code).toBe('INVALID');
    expect(blobErr.message).toMatch(/digest mismatch/);
  });

  it('refuses a tag whose Docker-Content-Digest disagrees with the bytes', async () => {
    const body = imageManifest();
    fake.handle((_req, res) => serveManifest(res, body, { 'docker-content-digest': sha256Digest('lies') }));
    const err = await rejection(c().getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('INVALID');
    expect(err.message).toMatch(/Docker-Content-Digest/);
  });

  it('refuses a manifest whose body media type disagrees with its Content-Type', async () => {
    const body = imageManifest();
    fake.handle((_req, res) => serveManifest(res, body, { 'content-type': OCI_INDEX }));
    const err = await rejection(c().getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('INVALID');
  });

  it('maps 403 to UNAUTHORIZED and other 4xx to INVALID with the status', async () => {
    fake.handle((_req, res) => {
      res.writeHead(403).end();
    });
    expect(await rejection(c().getManifest(fake.host, 'a/b', 'v1'))).toMatchObject({ code: 'UNAUTHORIZED', status: 403 });
    fake.handle((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_INVALID","message":"bad"}]}');
    });
    const err = await rejection(c().getManifest(fake.host, 'a/b', 'v1'));
    expect(err).toMatchObject({ code: 'INVALID', status: 400 });
    expect(err.message).toMatch(/HTTP 400 \(NAME_INVALID: bad\)/);
    expect(fake.requests).toHaveLength(1);
  });

  describe('bearer token challenge', () => {
    const challenge = (realm: string): string =>
      `Bearer realm="${realm}",service="fake-registry",scope="repository:team/app:pull"`;

    function tokenFlow(token: string, opts: { expiresIn?: number } = {}): void {
      fake.handle((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        if (u.pathname === '/token') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ token, expires_in: opts.expiresIn ?? 300 }));
        } else if (req.headers.authorization === `Bearer ${token}`) {
          if (u.pathname.includes('/blobs/')) {
            res.writeHead(200).end('blob!');
          } else {
            serveManifest(res, manifestBody);
          }
        } else {
          res.writeHead(401, { 'www-authenticate': challenge(`${fake.url}/token`) }).end();
        }
      });
    }
    const manifestBody = imageManifest();

    it('fetches an anonymous token, retries with it and caches it', async () => {
      tokenFlow('anon-token');
      const client1 = c();
      expect((await client1.getManifest(fake.host, 'team/app', 'v1')).digest).toBe(sha256Digest(manifestBody));
      await client1.getManifest(fake.host, 'team/app', 'v1');
      await client1.getBlob(fake.host, 'team/app', sha256Digest('blob!'), 100);

      const tokenReqs = fake.requests.filter((r) => r.path === '/token');
      expect(tokenReqs).toHaveLength(1);
      expect(tokenReqs[0]?.authorization).toBeUndefined();
      expect(tokenReqs[0]?.query.get('service')).toBe('fake-registry');
      expect(tokenReqs[0]?.query.getAll('scope')).toEqual(['repository:team/app:pull']);
      const registryReqs = fake.requests.filter((r) => r.path !== '/token');
      expect(registryReqs.map((r) => r.authorization)).toEqual([undefined, 'Bearer anon-token', 'Bearer anon-token', 'Bearer anon-token']);
    });

    it('sends the credentials to the token endpoint only, and the token to the registry only', async () => {
      tokenFlow('user-token');
      const credentials = credentialStoreFrom([[fake.host, { username: 'robot', password: 's3cr3t' }]]);
      await c({ credentials }).getManifest(fake.host, 'team/app', 'v1');
      const tokenReq = fake.requests.find((r) => r.path === '/token');
      expect(tokenReq?.authorization).toBe(basic('robot', 's3cr3t'));
      expect(tokenReq?.query.get('scope')).toBe('repository:team/app:pull');
      for (const r of fake.requests.filter((x) => x.path !== '/token')) {
        expect(r.authorization ?? '').not.toMatch(/^Basic/);
      }
      const logs = logLines.join('');
      expect(logs).toMatch(/"msg":"registry request"/);
      expect(logs).not.toContain('user-token');
      expect(logs).not.toContain('s3cr3t');
      expect(logs).not.toContain(Buffer.from('robot:s3cr3t').toString('base64'));
    });

    it('logs each request with method, url, status and ms', async () => {
      tokenFlow('t');
      await c().getManifest(fake.host, 'team/app', 'v1');
      const entries = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === 'registry request');
      expect(entries.length).toBe(3);
      for (const e of entries) {
        expect(e).toMatchObject({ level: 20, method: 'GET' });
        expect(typeof e.url).toBe('string');
        expect(typeof e.ms).toBe('number');
      }
      expect(entries.map((e) => e.status)).toEqual([401, 200, 200]);
      expect(entries[1]?.url).toBe(`${fake.url}/token?…`);
    });

    it('is UNAUTHORIZED when the registry rejects the fresh token', async () => {
      fake.handle((req, res) => {
        if (req.url?.startsWith('/token') === true) {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"useless"}');
        } else {
          res.writeHead(401, { 'www-authenticate': challenge(`${fake.url}/token`) }).end();
        }
      });
      const err = await rejection(c().getManifest(fake.host, 'team/app', 'v1'));
      expect(err).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect(fake.requests.map((r) => r.path)).toEqual(['/v2/team/app/manifests/v1', '/token', '/v2/team/app/manifests/v1']);
    });

    it('is UNAUTHORIZED when the token endpoint refuses the credentials', async () => {
      fake.handle((req, res) => {
        if (req.url?.startsWith('/token') === true) {
          res.writeHead(401).end();
        } else {
          res.writeHead(401, { 'www-authenticate': challenge(`${fake.url}/token`) }).end();
        }
      });
      const credentials = credentialStoreFrom([[fake.host, { username: 'robot', password: 'wrong' }]]);
      const err = await rejection(c({ credentials }).getManifest(fake.host, 'team/app', 'v1'));
      expect(err.code).toBe('UNAUTHORIZED');
      expect(err.message).toMatch(/refused the configured credentials/);
    });

    it('refuses a plain-HTTP realm on a host that is not insecure, without contacting it', async () => {
      const elsewhere = await startFake();
      try {
        fake.handle((_req, res) => {
          res.writeHead(401, { 'www-authenticate': challenge(`${elsewhere.url}/token`) }).end();
        });
        const credentials = credentialStoreFrom([[fake.host, { username: 'robot', password: 's3cr3t' }]]);
        const err = await rejection(c({ insecureHosts: [fake.host], credentials }).getManifest(fake.host, 'team/app', 'v1'));
        expect(err.code).toBe('REFUSED');
        expect(elsewhere.requests).toEqual([]);
      } finally {
        await elsewhere.close();
      }
    });
  });

  describe('basic challenge', () => {
    const creds = { username: 'alice', password: 'open sesame' };

    it('retries with Basic credentials, then sends them up front', async () => {
      const body = imageManifest();
      fake.handle((req, res) => {
        if (req.headers.authorization === basic(creds.username, creds.password)) {
          serveManifest(res, body);
        } else {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
        }
      });
      const client1 = c({ credentials: credentialStoreFrom([[fake.host, creds]]) });
      await client1.getManifest(fake.host, 'a/b', 'v1');
      await client1.getManifest(fake.host, 'a/b', 'v1');
      expect(fake.requests.map((r) => r.authorization)).toEqual([
        undefined,
        basic(creds.username, creds.password),
        basic(creds.username, creds.password),
      ]);
    });

    it('is UNAUTHORIZED without credentials', async () => {
      fake.handle((_req, res) => {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
      });
      expect(await rejection(c().getManifest(fake.host, 'a/b', 'v1'))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect(fake.requests).toHaveLength(1);
    });
  });

  describe('redirects', () => {
    it('follows a blob redirect to storage without carrying the Authorization header', async () => {
      const blob = randomBytes(2048);
      const digest = sha256Digest(blob);
      const creds = { username: 'alice', password: 'pw' };
      storage.handle((_req, res) => {
        res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
      });
      fake.handle((req, res) => {
        if (req.headers.authorization === undefined) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
        } else {
          res.writeHead(307, { location: `${storage.url}/bucket/${digest.slice(7)}?X-Amz-Signature=secret` }).end();
        }
      });
      const got = await c({ credentials: credentialStoreFrom([[fake.host, creds]]) }).getBlob(fake.host, 'a/b', digest, 4096);
      expect(got.equals(blob)).toBe(true);
      expect(storage.requests).toHaveLength(1);
      expect(storage.requests[0]?.authorization).toBeUndefined();
      expect(logLines.join('')).not.toContain('X-Amz-Signature=secret');
    });

    it('refuses a redirect to plain HTTP on a host that is not insecure', async () => {
      const elsewhere = await startFake();
      try {
        fake.handle((_req, res) => {
          res.writeHead(302, { location: `${elsewhere.url}/blob` }).end();
        });
        const err = await rejection(c({ insecureHosts: [fake.host] }).getBlob(fake.host, 'a/b', sha256Digest('x'), 10));
        expect(err.code).toBe('REFUSED');
        expect(elsewhere.requests).toEqual([]);
      } finally {
        await elsewhere.close();
      }
    });

    it('stops after too many redirects', async () => {
      fake.handle((req, res) => {
        res.writeHead(302, { location: `${req.url ?? '/'}x` }).end();
      });
      expect((await rejection(c().getBlob(fake.host, 'a/b', sha256Digest('x'), 10))).code).toBe('INVALID');
      expect(fake.requests).toHaveLength(6);
    });
  });

  describe('allowlists (no SSRF)', () => {
    it('refuses a registry that is not allowed, before sending anything', async () => {
      fake.handle((_req, res) => serveManifest(res, imageManifest()));
      const err = await rejection(c({ allowedRegistries: ['registry.example.com'] }).getManifest(fake.host, 'a/b', 'v1'));
      expect(err.code).toBe('REFUSED');
      expect(err.message).toContain(`registry ${fake.host} is not one Signet may contact`);
      expect(fake.requests).toEqual([]);
      await c({ allowedRegistries: [fake.host] }).getManifest(fake.host, 'a/b', 'v1');
      expect(fake.requests).toHaveLength(1);
    });

    it('follows a redirect to another host only when that host is allowed', async () => {
      const blob = randomBytes(64);
      const digest = sha256Digest(blob);
      storage.handle((_req, res) => res.writeHead(200).end(blob));
      fake.handle((_req, res) => res.writeHead(307, { location: `${storage.url}/bucket/${digest.slice(7)}` }).end());
      const refused = await rejection(c({ allowedRegistries: [fake.host] }).getBlob(fake.host, 'a/b', digest, 4096));
      expect(refused.code).toBe('REFUSED');
      expect(refused.message).toContain(`redirect to ${storage.host}: not in SIGNET_ALLOWED_REDIRECT_HOSTS`);
      expect(storage.requests).toEqual([]);
      const got = await c({ allowedRegistries: [fake.host], allowedRedirectHosts: [storage.host] }).getBlob(fake.host, 'a/b', digest, 4096);
      expect(got.equals(blob)).toBe(true);
    });

    it('asks a token realm on another host only when that host is allowed', async () => {
      storage.handle((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't' })));
      fake.handle((req, res) => {
        if (req.headers.authorization === 'Bearer t') {
          serveManifest(res, imageManifest());
        } else {
          res.writeHead(401, { 'www-authenticate': `Bearer realm="${storage.url}/token",service="s"` }).end();
        }
      });
      const refused = await rejection(c({ allowedRegistries: [fake.host] }).getManifest(fake.host, 'a/b', 'v1'));
      expect(refused.code).toBe('REFUSED');
      expect(refused.message).toContain(`token realm on ${storage.host}`);
      expect(storage.requests).toEqual([]);
      await c({ allowedRegistries: [fake.host], allowedRedirectHosts: [storage.host] }).getManifest(fake.host, 'a/b', 'v1');
      expect(storage.requests).toHaveLength(1);
    });
  });

  it('uses https for a host that is not in insecureHosts, and never falls back to plain HTTP', async () => {
    fake.handle((_req, res) => serveManifest(res, imageManifest()));
    const credentials = credentialStoreFrom([[fake.host, { username: 'alice', password: 'pw' }]]);
    const err = await rejection(client({ insecureHosts: [], retries: 2, credentials }).getManifest(fake.host, 'a/b', 'v1'));
    expect(err.code).toBe('TRANSIENT');
    expect(err.message).toMatch(/TLS|connection/);
    expect(fake.requests).toEqual([]);
    const entries = logLines.map((l) => JSON.parse(l) as { msg: string; url?: string });
    expect(entries.filter((e) => e.msg === 'registry request').every((e) => e.url?.startsWith('https://') === true)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The token realms of the big public registries, as they answer (captured shapes), played by a
// fake registry and a fake auth server on loopback: the real hosts are not reachable from tests.

describe('token realms of Docker Hub, GHCR and Quay', () => {
  let registry: Fake;
  let auth: Fake;
  beforeAll(async () => {
    [registry, auth] = await Promise.all([startFake(), startFake()]);
  });
  afterAll(async () => {
    await registry.close();
    await auth.close();
  });
  beforeEach(() => {
    registry.requests.length = 0;
    auth.requests.length = 0;
    logLines.length = 0;
  });

  const manifest = imageManifest();

  interface Provider {
    readonly name: string;
    /** As image references name the registry (mapped to the fake by `endpoints`). */
    readonly host: string;
    readonly repository: string;
    /** The repository the registry API sees. */
    readonly apiRepository: string;
    readonly challenge: (realm: string) => string;
    readonly realmPath: string;
    readonly tokenBody: (token: string) => Record<string, unknown>;
    readonly expectedScope: string;
    readonly expectedService: string;
  }
  const providers: Provider[] = [
    {
      name: 'Docker Hub',
      host: 'docker.io',
      repository: 'nginx',
      apiRepository: 'library/nginx',
      realmPath: '/token',
      challenge: (realm) => `Bearer realm="${realm}",service="registry.docker.io",scope="repository:library/nginx:pull"`,
      tokenBody: (t) => ({ token: t, access_token: t, expires_in: 300, issued_at: new Date().toISOString() }),
      expectedScope: 'repository:library/nginx:pull',
      expectedService: 'registry.docker.io',
    },
    {
      name: 'GHCR',
      host: 'ghcr.io',
      repository: 'acme/app',
      apiRepository: 'acme/app',
      realmPath: '/token',
      challenge: (realm) => `Bearer realm="${realm}",service="ghcr.io",scope="repository:acme/app:pull"`,
      tokenBody: (t) => ({ token: t }),
      expectedScope: 'repository:acme/app:pull',
      expectedService: 'ghcr.io',
    },
    {
      name: 'Quay (no scope in the challenge)',
      host: 'quay.io',
      repository: 'org/app',
      apiRepository: 'org/app',
      realmPath: '/v2/auth',
      challenge: (realm) => `Bearer realm="${realm}",service="quay.io"`,
      tokenBody: (t) => ({ token: t }),
      expectedScope: 'repository:org/app:pull',
      expectedService: 'quay.io',
    },
  ];

  /** Serves `p`: the registry wants a token the auth server issues (per-credential tokens when logged in). */
  function play(p: Provider, opts: { password?: string; revokeFirst?: boolean } = {}): void {
    let issued = 0;
    const valid = new Set<string>();
    auth.handle((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname !== p.realmPath) {
        res.writeHead(404).end();
        return;
      }
      if (req.headers.authorization !== undefined && req.headers.authorization !== basic('robot', opts.password ?? '')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      const token = `${req.headers.authorization === undefined ? 'anon' : 'user'}-${++issued}`;
      valid.add(token);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(p.tokenBody(token)));
    });
    registry.handle((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const token = req.headers.authorization?.replace(/^Bearer /, '');
      if (token !== undefined && valid.has(token) && u.pathname === `/v2/${p.apiRepository}/manifests/v1`) {
        if (opts.revokeFirst === true && token.endsWith('-1') && registry.requests.length > 2) {
          valid.delete(token);
        } else {
          serveManifest(res, manifest);
          return;
        }
      }
      res.writeHead(401, { 'www-authenticate': p.challenge(`${auth.url}${p.realmPath}`), 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
  }

  const forProvider = (p: Provider, o: Partial<RegistryClientOptions> = {}) =>
    client({ insecureHosts: [registry.host, auth.host], endpoints: { [p.host]: registry.url }, retries: 0, ...o });

  for (const p of providers) {
    it(`${p.name}: anonymous pull token, the realm's service and scope, reused for the next request`, async () => {
      play(p);
      const c = forProvider(p);
      expect((await c.getManifest(p.host, p.repository, 'v1')).digest).toBe(sha256Digest(manifest));
      await c.getManifest(p.host, p.repository, 'v1');
      expect(auth.requests).toHaveLength(1);
      expect(auth.requests[0]).toMatchObject({ authorization: undefined });
      expect(auth.requests[0]!.query.get('service')).toBe(p.expectedService);
      expect(auth.requests[0]!.query.getAll('scope')).toEqual([p.expectedScope]);
      expect(registry.requests.map((r) => r.path)).toEqual([`/v2/${p.apiRepository}/manifests/v1`, `/v2/${p.apiRepository}/manifests/v1`, `/v2/${p.apiRepository}/manifests/v1`]);
    });

    it(`${p.name}: logged in with credentials from a docker config.json; a wrong password is UNAUTHORIZED and never shown`, async () => {
      const key = p.host === 'docker.io' ? 'https://index.docker.io/v1/' : p.host;
      const config = (password: string) => parseDockerConfig(JSON.stringify({ auths: { [key]: { auth: Buffer.from(`robot:${password}`).toString('base64') } } }));
      play(p, { password: 'pat-0123456789' });
      await forProvider(p, { credentials: config('pat-0123456789') }).getManifest(p.host, p.repository, 'v1');
      expect(auth.requests[0]!.authorization).toBe(basic('robot', 'pat-0123456789'));
      const err = await rejection(forProvider(p, { credentials: config('wrong-password-42') }).getManifest(p.host, p.repository, 'v1'));
      expect(err.code).toBe('UNAUTHORIZED');
      expect(err.message).toMatch(/refused the configured credentials/);
      expect(err.message + logLines.join('')).not.toContain('wrong-password-42');
    });
  }

  it('a cached token the registry stops accepting is replaced once, not in a loop', async () => {
    const p = providers[1]!;
    play(p, { revokeFirst: true });
    const c = forProvider(p);
    await c.getManifest(p.host, p.repository, 'v1');
    await c.getManifest(p.host, p.repository, 'v1');
    expect(auth.requests).toHaveLength(2);
    expect(registry.requests.map((r) => r.authorization)).toEqual([undefined, 'Bearer anon-1', 'Bearer anon-1', 'Bearer anon-2']);
  });
});

describe('concurrency limit per registry', () => {
  let slow: Fake;
  let other: Fake;
  beforeAll(async () => {
    [slow, other] = await Promise.all([startFake(), startFake()]);
  });
  afterAll(async () => {
    await slow.close();
    await other.close();
  });

  /** Answers each manifest request after `ms`, counting how many are open at once. */
  function counting(fake: Fake, ms: number): { max: () => number } {
    let open = 0;
    let max = 0;
    const body = imageManifest();
    fake.handle((_req, res) => {
      open++;
      max = Math.max(max, open);
      setTimeout(() => {
        open--;
        serveManifest(res, body);
      }, ms);
    });
    return { max: () => max };
  }

  it('keeps at most `concurrency` requests in flight to one registry, and a registry-specific limit wins', async () => {
    const a = counting(slow, 20);
    const b = counting(other, 20);
    const c = client({ insecureHosts: [slow.host, other.host], concurrency: 3, concurrencyByRegistry: { [other.host]: 1 } });
    await Promise.all([
      ...Array.from({ length: 24 }, () => c.getManifest(slow.host, 'a/b', 'v1')),
      ...Array.from({ length: 6 }, () => c.getManifest(other.host, 'a/b', 'v1')),
    ]);
    expect(a.max()).toBe(3);
    expect(b.max()).toBe(1);
  });

  it('time spent waiting for a slot does not count against the request timeout', async () => {
    const a = counting(slow, 100);
    const c = client({ insecureHosts: [slow.host], concurrency: 1, timeoutMs: 1_000, retries: 0 });
    // Twelve requests of 100 ms in one slot take well over the 1 s timeout in all; each alone is within it.
    const results = await Promise.all(Array.from({ length: 12 }, () => c.getManifest(slow.host, 'a/b', 'v1')));
    expect(results).toHaveLength(12);
    expect(a.max()).toBe(1);
  });
});
