// The real entry point (`npm start` runs `node bin/signet-server.js`, which loads services/main.ts) as a child process.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { deleteQueueKeys, eventually, TEST_REDIS_URL } from '../helpers/signet.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

const MAIN = fileURLToPath(new URL('../../bin/signet-server.js', import.meta.url));

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** A whole Signet on `port` (its own queue prefix), over `databaseUrl` and `redisUrl`. */
function serverEnv(port: number, databaseUrl: string, redisUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    SIGNET_WEBHOOK_TOKEN: 'process-test-token-0123456789',
    SIGNET_QUEUE_PREFIX: `signet-proc-${port}`,
    SIGNET_TUF_REFRESH: '0',
    LOG_LEVEL: 'info',
  };
}

describe('npm start (bin/signet-server.js → services/main.ts)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('starts every role, becomes ready, and exits 0 on SIGTERM after an ordered shutdown', async () => {
    const port = await freePort();
    const p = run(serverEnv(port, db.url, TEST_REDIS_URL));
    const ready = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return res.status === 200 ? await res.json() : undefined;
    }, 'readyz 200');
    expect(ready).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('"msg":"shutting down"');
    await deleteQueueKeys(TEST_REDIS_URL, `signet-proc-${port}`);
  });

  it('while Postgres cannot be reached at start, says where it waits for it, one line per attempt and no stack', async () => {
    const closed = await freePort();
    const p = run({ DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/signet`, REDIS_URL: TEST_REDIS_URL, PORT: String(await freePort()), SIGNET_WEBHOOK_TOKEN: 'process-test-token-0123456789' });
    try {
      await eventually(() => Promise.resolve(p.output().split('\n').filter((l) => l.includes('waiting for postgres')).length >= 2 ? true : undefined), 'two waiting lines');
      const lines = p.output().split('\n').filter((l) => l.includes('waiting for postgres'));
      const first = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(first).toMatchObject({ level: 40, dependency: 'postgres', address: `127.0.0.1:${closed}`, attempt: 1 });
      expect(first.msg).toMatch(new RegExp(`^waiting for postgres at 127\\.0\\.0\\.1:${closed} \\(attempt 1 of \\d+\\): .*ECONNREFUSED`));
      expect(p.output()).not.toContain('"stack"');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('refuses to start on a bad configuration, listing every problem, with exit code 2', async () => {
    const p = run({ PORT: 'x', SIGNET_WEBHOOK_TOKEN: 'short', SIGNET_ROLES: 'nope' });
    expect(await p.exited).toBe(2);
    for (const name of ['PORT', 'SIGNET_WEBHOOK_TOKEN', 'SIGNET_ROLES']) {
      expect(p.output()).toContain(name);
    }
  });

  it('says a Redis outage in one line naming the address, not a stack per retry, and says when it is back', async () => {
    const redisPort = await freePort();
    const port = await freePort();
    const p = run(serverEnv(port, db.url, `redis://127.0.0.1:${redisPort}`));
    let redis: ReturnType<typeof spawn> | null = null;
    try {
      await eventually(() => Promise.resolve(p.output().includes(`redis at 127.0.0.1:${redisPort} is unreachable`) ? true : undefined), 'the outage said', 20_000);
      // Every client retries meanwhile (three queues, three workers, six connections).
      await new Promise((r) => setTimeout(r, 4_000));
      const lines = p.output().split('\n').filter((l) => l.includes('"dependency":"redis"') || /redis|queue error|worker error/i.test(l));
      expect(lines).toHaveLength(1);
      expect(p.output().split('\n').filter((l) => l.includes('"stack"'))).toEqual([]);
      redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await eventually(() => Promise.resolve(p.output().includes(`redis at 127.0.0.1:${redisPort} is reachable again`) ? true : undefined), 'the recovery said', 20_000);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
      redis?.kill('SIGKILL');
    }
  });

  it('says a Postgres outage in one line naming the address, not a stack per connection or retry, and says when it is back', async () => {
    const pg = new URL(db.url);
    const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
    const through = new URL(db.url);
    through.port = String(proxy.port);
    const port = await freePort();
    const p = run(serverEnv(port, through.toString(), TEST_REDIS_URL));
    try {
      await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined), 'readyz 200');
      const before = p.output().length;
      proxy.cut();
      // Lookups the table does not hold go to the ledger meanwhile; the pool loses every connection.
      for (let i = 0; i < 8; i++) {
        await fetch(`http://127.0.0.1:${port}/v1/decisions?image=${encodeURIComponent(`127.0.0.1:9/outage/app:v${i}`)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const during = p.output().slice(before).split('\n').filter((l) => l !== '');
      expect(during.filter((l) => l.includes('"stack"'))).toEqual([]);
      const said = during.filter((l) => /postgres/i.test(l));
      expect(said).toHaveLength(1);
      expect(JSON.parse(said[0]!)).toMatchObject({ level: 40, dependency: 'postgres', address: `127.0.0.1:${proxy.port}`, msg: expect.stringMatching(new RegExp(`^postgres at 127\\.0\\.0\\.1:${proxy.port} is unreachable \\(.*\\); retrying$`)) });
      proxy.restore();
      await eventually(async () => {
        await fetch(`http://127.0.0.1:${port}/v1/decisions?image=${encodeURIComponent('127.0.0.1:9/outage/app:back')}`);
        return p.output().includes(`postgres at 127.0.0.1:${proxy.port} is reachable again`) ? true : undefined;
      }, 'the recovery said');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
      await proxy.close();
      await deleteQueueKeys(TEST_REDIS_URL, `signet-proc-${port}`);
    }
  });

  it('exits 2 with a clear message when the trusted root is unreadable (configuration, like a bad variable)', async () => {
    const p = run({
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      PORT: String(await freePort()),
      SIGNET_TRUSTED_ROOT: '/nonexistent/trusted_root.json',
    });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('cannot read the trusted root /nonexistent/trusted_root.json');
  });

  it('exits 2 on an invalid policy, saying where in the file as file:line:column', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'signet-process-'));
    const file = join(dir, 'policy.yaml');
    await writeFile(file, 'allow_with_verification:\n  registry.example.com:\n    team/*:\n      certificate-identity-regexp: "(unclosed"\n      certificate-oidc-issuer: https://accounts.google.com\n');
    try {
      const p = run({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, PORT: String(await freePort()), SIGNET_POLICY: file });
      expect(await p.exited).toBe(2);
      expect(p.output()).toContain(`${file}:4:36: allow_with_verification.registry.example.com.team/*.certificate-identity-regexp: not an RE2 regular expression`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
