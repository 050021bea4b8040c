/**
 * Runs a real registry (Debian's `docker-registry`, CNCF distribution 2.8) on 127.0.0.1 for tests.
 *
 * @example
 *   const reg = await startRegistry({ notifications: { url: 'http://127.0.0.1:8080/webhook', token: 'secret' } });
 *   try { ... fetch(`${reg.url}/v2/`) ... } finally { await reg.stop(); }
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, the name to pass to the client (list it as insecure). */
  readonly host: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Temp dir: the filesystem storage root, also holding config.yml and htpasswd. */
  readonly storageDir: string;
  /** The registry's process (benchmarks read its CPU time). */
  readonly pid: number;
  /** Kills the registry and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Everything the registry wrote to stdout and stderr so far (its access and app logs). */
  logs(): string;
}

export interface StartRegistryOptions {
  /** Listen on this port (e.g. one a test already told Signet about); a free port by default. */
  readonly port?: number;
  /**
   * Adds a notification endpoint named `signet` that gets every event, or all but those `ignore`
   * names (distribution's `ignore.mediatypes` and `ignore.actions`).
   */
  readonly notifications?: { readonly url: string; readonly token?: string; readonly ignore?: NotificationIgnore };
  /** Protects the registry with htpasswd (Basic auth) for this one user. */
  readonly htpasswd?: { readonly username: string; readonly password: string };
  /** Protects the registry with token auth: a Bearer challenge naming `realm` (see test/helpers/token-server.ts). */
  readonly token?: RegistryTokenAuth;
}

/** Events a notification endpoint is not sent: by the target's media type, and by action. */
export interface NotificationIgnore {
  readonly mediaTypes: readonly string[];
  readonly actions: readonly string[];
}

/**
 * What the README's registry configuration has distribution leave out: blob events (their media
 * type is `application/octet-stream`) and pulls, which Signet answers 202 and ignores. Pushes and
 * deletes of manifests (images, indexes, signatures, attestations, referrers) still come.
 */
export const RECOMMENDED_IGNORE: NotificationIgnore = { mediaTypes: ['application/octet-stream'], actions: ['pull'] };

/** distribution's `auth.token` section: who issues tokens and the certificate their signatures chain to. */
export interface RegistryTokenAuth {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM certificate file the tokens' `x5c` chains to. */
  readonly rootCertBundle: string;
}

const READY_TIMEOUT_MS = 10_000;
const MAX_LOG_CHARS = 2_000_000;

/** JSON strings are valid YAML double-quoted scalars: no hand-escaping of paths, URLs or tokens. */
const q = (s: string): string => JSON.stringify(s);

export function registryConfigYaml(opts: {
  storageDir: string;
  port: number;
  notifications?: StartRegistryOptions['notifications'];
  htpasswdPath?: string;
  token?: RegistryTokenAuth;
}): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(opts.storageDir)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${q(`127.0.0.1:${opts.port}`)}`,
    `  secret: ${q(randomBytes(16).toString('hex'))}`,
  ];
  if (opts.htpasswdPath !== undefined) {
    lines.push('auth:', '  htpasswd:', '    realm: "signet-test"', `    path: ${q(opts.htpasswdPath)}`);
  } else if (opts.token !== undefined) {
    const t = opts.token;
    lines.push('auth:', '  token:', `    realm: ${q(t.realm)}`, `    service: ${q(t.service)}`, `    issuer: ${q(t.issuer)}`, `    rootcertbundle: ${q(t.rootCertBundle)}`);
  }
  if (opts.notifications !== undefined) {
    const n = opts.notifications;
    lines.push(
      'notifications:',
      '  events:',
      '    includereferences: true',
      '  endpoints:',
      '    - name: signet',
      '      disabled: false',
      `      url: ${q(n.url)}`,
    );
    if (n.token !== undefined) {
      lines.push('      headers:', '        Authorization:', `          - ${q(`Bearer ${n.token}`)}`);
    }
    lines.push(
      '      timeout: 2s',
      '      threshold: 10',
      '      backoff: 500ms',
      // Explicitly empty unless asked: signature manifests (and everything else) must produce events.
      '      ignoredmediatypes: []',
      '      ignore:',
      `        mediatypes: ${JSON.stringify(n.ignore?.mediaTypes ?? [])}`,
      `        actions: ${JSON.stringify(n.ignore?.actions ?? [])}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  try {
    await access(REGISTRY_BINARY, constants.X_OK);
  } catch {
    throw new Error(`${REGISTRY_BINARY} not found: install Debian's docker-registry package (apt-get install docker-registry)`);
  }
  // A free port can be taken between probing and binding: try a few times.
  let lastError: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      lastError = err;
      if (!(err instanceof PortInUseError) || opts.port !== undefined) {
        throw err;
      }
    }
  }
  throw lastError;
}

class PortInUseError extends Error {}

async function startOnce(opts: StartRegistryOptions): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-registry-'));
  const port = opts.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  let htpasswdPath: string | undefined;
  if (opts.htpasswd !== undefined) {
    const { username, password } = opts.htpasswd;
    if (username.includes(':') || /[\r\n]/.test(username)) {
      throw new Error('htpasswd username must not contain ":" or newlines');
    }
    htpasswdPath = join(dir, 'htpasswd');
    await writeFile(htpasswdPath, `${username}:${bcrypt.hashSync(password, 4)}\n`, { mode: 0o600 });
  }
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, registryConfigYaml({ storageDir: dir, port, notifications: opts.notifications, htpasswdPath, ...(opts.token === undefined ? {} : { token: opts.token }) }));

  let output = '';
  const append = (chunk: Buffer): void => {
    if (output.length < MAX_LOG_CHARS) {
      output += chunk.toString('utf8');
    }
  };
  const child: ChildProcess = spawn(REGISTRY_BINARY, ['serve', configPath], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      append(Buffer.from(`spawn error: ${err.message}\n`));
      exited = { code: null, signal: null };
      resolve();
    });
  });
  // If the test process dies without calling stop(), do not leave the registry running.
  const killOnExit = (): void => {
    if (exited === null) {
      child.kill('SIGKILL');
    }
  };
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) {
      return;
    }
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (exited === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exitPromise;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited !== null) {
      await stop();
      if (/address already in use/i.test(output)) {
        throw new PortInUseError(`docker-registry could not listen on 127.0.0.1:${port}: address already in use`);
      }
      throw new Error(`docker-registry exited before it was ready (${JSON.stringify(exited)}):\n${output.slice(-4000)}`);
    }
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer GET ${url}/v2/ within ${READY_TIMEOUT_MS} ms:\n${output.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return { host, url, storageDir: dir, pid: child.pid!, stop, logs: () => output };
}
