// listPage and Link pagination against an in-process server (the real registry's _catalog and
// tags/list paging is covered in test/integration/reconcile.test.ts; distribution 2.8 has no referrers API).
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, nextPageFromLink } from './client.ts';

describe('nextPageFromLink', () => {
  const origin = 'http://127.0.0.1:5000';
  it.each([
    ['</v2/_catalog?last=b&n=2>; rel="next"', '/v2/_catalog?last=b&n=2'],
    ['<http://127.0.0.1:5000/v2/a/tags/list?n=2&last=x>; rel=next', '/v2/a/tags/list?n=2&last=x'],
    ['</v2/x>; rel="prev", </v2/y?last=1>; rel="next"', '/v2/y?last=1'],
    ['<https://evil.example/v2/_catalog>; rel="next"', null],
    ['</elsewhere>; rel="next"', null],
    ['</v2/x>; rel="prev"', null],
    [null, null],
  ])('%s → %s', (link, next) => {
    expect(nextPageFromLink(link, origin)).toBe(next);
  });
});

describe('listPage', () => {
  let server: Server;
  let host: string;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      const digest = `sha256:${'a'.repeat(64)}`;
      if (req.url === `/v2/team/app/referrers/${digest}`) {
        res.setHeader('link', `</v2/team/app/referrers/${digest}?page=2>; rel="next"`);
        res.end(JSON.stringify({ manifests: [{ digest: `sha256:${'b'.repeat(64)}`, artifactType: 'x' }] }));
      } else if (req.url === `/v2/team/app/referrers/${digest}?page=2`) {
        res.end(JSON.stringify({ manifests: [] }));
      } else {
        res.statusCode = 404;
        res.end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('follows the Link header from a path relative to the repository', async () => {
    const client = createRegistryClient({ insecureHosts: [host], timeoutMs: 2_000, retries: 0, maxManifestBytes: 1 << 20, log: pino({ level: 'silent' }) });
    const first = await client.listPage(host, 'team/app', `referrers/sha256:${'a'.repeat(64)}`);
    expect(first.body).toEqual({ manifests: [{ digest: `sha256:${'b'.repeat(64)}`, artifactType: 'x' }] });
    expect(first.next).toBe(`/v2/team/app/referrers/sha256:${'a'.repeat(64)}?page=2`);
    const second = await client.listPage(host, 'team/app', first.next!);
    expect(second).toEqual({ body: { manifests: [] }, next: null });
    await expect(client.listPage(host, null, '_catalog?n=10')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(seen).toContain('/v2/_catalog?n=10');
  });
});
