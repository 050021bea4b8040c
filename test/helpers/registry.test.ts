// The test helpers themselves: a real docker-registry configured as Signet's integration tests need it.
import { access } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './net.ts';
import { OCI_INDEX, OCI_MANIFEST, pushIndex, pushRandomImage } from './oci-push.ts';
import { RECOMMENDED_IGNORE, registryConfigYaml, startRegistry, type RunningRegistry } from './registry.ts';

interface Delivery {
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly events: { action: string; target: { mediaType: string; digest?: string; tag?: string; references?: unknown[] } }[];
}

async function eventually<T>(fn: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A notification endpoint on loopback that keeps every delivery it is sent. */
async function startListener(deliveries: Delivery[]): Promise<{ readonly url: string; close(): Promise<void> }> {
  const listener: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      deliveries.push({
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        events: (JSON.parse(body) as { events: Delivery['events'] }).events,
      });
      res.end();
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const addr = listener.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    async close() {
      listener.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

describe('startRegistry', () => {
  const deliveries: Delivery[] = [];
  let listener: Awaited<ReturnType<typeof startListener>>;
  let reg: RunningRegistry;

  beforeAll(async () => {
    listener = await startListener(deliveries);
    reg = await startRegistry({ notifications: { url: listener.url, token: 'hook-token' } });
  });

  afterAll(async () => {
    await reg?.stop();
    await listener?.close();
  });

  it('sends every push, blobs included, with the bearer token and index references', async () => {
    const img = await pushRandomImage(reg.url, 'helpers/app', 'v1');
    const idx = await pushIndex(reg.url, 'helpers/app', 'multi');
    const all = () => deliveries.flatMap((d) => d.events);
    const indexEvent = await eventually(
      () => all().find((e) => e.action === 'push' && e.target.digest === idx.digest),
      'the index push event',
    );
    expect(indexEvent.target).toMatchObject({ mediaType: OCI_INDEX, tag: 'multi' });
    expect(indexEvent.target.references).toHaveLength(2);
    const imageEvent = all().find((e) => e.action === 'push' && e.target.digest === img.digest);
    expect(imageEvent?.target).toMatchObject({ mediaType: OCI_MANIFEST, tag: 'v1' });
    expect(all().some((e) => e.target.digest === img.layer.digest)).toBe(true);
    for (const d of deliveries) {
      expect(d.authorization).toBe('Bearer hook-token');
      expect(d.contentType).toBe('application/vnd.docker.distribution.events.v1+json');
    }
    expect(reg.logs()).toMatch(/listening on 127\.0\.0\.1:/);
  });

  it('writes a config without notifications when none are asked for', () => {
    const yaml = registryConfigYaml({ storageDir: '/tmp/x y', port: 5000 });
    expect(yaml).not.toContain('notifications');
    expect(yaml).toContain('rootdirectory: "/tmp/x y"');
    expect(yaml).toContain('addr: "127.0.0.1:5000"');
  });

  it('listens on a given port, and stop() kills it and removes its directory', async () => {
    const port = await freePort();
    const other = await startRegistry({ port });
    expect(other.host).toBe(`127.0.0.1:${port}`);
    expect((await fetch(`${other.url}/v2/`)).status).toBe(200);
    await other.stop();
    await expect(access(other.storageDir)).rejects.toThrow();
    await expect(fetch(`${other.url}/v2/`)).rejects.toThrow();
    await other.stop(); // idempotent
  });

  it('protects the registry with htpasswd', async () => {
    const user = { username: 'ci', password: 'correct horse' };
    const secured = await startRegistry({ htpasswd: user });
    try {
      const anon = await fetch(`${secured.url}/v2/`);
      expect(anon.status).toBe(401);
      expect(anon.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      const authed = await fetch(`${secured.url}/v2/`, {
        headers: { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` },
      });
      expect(authed.status).toBe(200);
      await expect(pushRandomImage(secured.url, 'x/y', 'v1')).rejects.toThrow(/401/);
      await expect(pushRandomImage(secured.url, 'x/y', 'v1', { auth: user })).resolves.toBeDefined();
    } finally {
      await secured.stop();
    }
  });
});

describe('startRegistry with the README\'s notification settings', () => {
  const deliveries: Delivery[] = [];
  let listener: Awaited<ReturnType<typeof startListener>>;
  let reg: RunningRegistry;

  beforeAll(async () => {
    listener = await startListener(deliveries);
    reg = await startRegistry({ notifications: { url: listener.url, ignore: RECOMMENDED_IGNORE } });
  });

  afterAll(async () => {
    await reg?.stop();
    await listener?.close();
  });

  it('sends manifest pushes and deletes, and no blob event or pull', async () => {
    const img = await pushRandomImage(reg.url, 'quiet/app', 'v1');
    // Pulls of the manifest (by tag and digest) and of a blob.
    for (const path of ['manifests/v1', `manifests/${img.digest}`, `blobs/${img.layer.digest}`]) {
      expect((await fetch(`${reg.url}/v2/quiet/app/${path}`, { headers: { accept: OCI_MANIFEST } })).status).toBe(200);
    }
    expect((await fetch(`${reg.url}/v2/quiet/app/manifests/${img.digest}`, { method: 'DELETE' })).status).toBe(202);
    // Events of one endpoint come in order: once the last push is in, a pull or blob event would be too.
    const last = await pushRandomImage(reg.url, 'quiet/app', 'v2');
    const events = () => deliveries.flatMap((d) => d.events);
    await eventually(() => events().find((e) => e.target.digest === last.digest), 'the last push');
    // The delete of a tagged manifest is sent as two events: the manifest's, and its tag's.
    expect(events().map((e) => [e.action, e.target.digest ?? `tag ${e.target.tag}`])).toEqual([
      ['push', img.digest],
      ['delete', img.digest],
      ['delete', 'tag v1'],
      ['push', last.digest],
    ]);
  });
});
