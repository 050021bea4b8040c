/**
 * A registry token server for tests (the role docker_auth or a cloud registry's token endpoint
 * plays): a real {@link startRegistry} with `token` auth sends clients here, and accepts the
 * ES256 JWTs it signs (their `x5c` chains to `certPath`, a self-signed certificate made with
 * openssl). It answers the two ways clients ask:
 * - GET with Basic credentials (`?service=&scope=`), as the token spec says;
 * - POST `grant_type=refresh_token` with an identity token, as docker and containerd send an
 *   `identitytoken` (the OAuth2 spec).
 *
 * @example
 *   const tokens = await startTokenServer({ username: 'u', password: 'p', refreshToken: 'r' });
 *   const reg = await startRegistry({ token: tokens.registryAuth });
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RegistryTokenAuth } from './registry.ts';

export interface TokenServerOptions {
  readonly username: string;
  readonly password: string;
  /** The identity token (refresh token) the POST grant accepts. */
  readonly refreshToken: string;
  /** Lifetime of the access tokens (`expires_in`, and the JWT's `exp`). */
  readonly expiresInSec?: number;
}

/** One token request as the server saw it. */
export interface TokenRequest {
  readonly grant: 'basic' | 'refresh_token' | 'anonymous';
  readonly scope: string;
  readonly granted: boolean;
}

export interface RunningTokenServer {
  readonly registryAuth: RegistryTokenAuth;
  readonly requests: TokenRequest[];
  /** A token for `repository:<name>:<actions>` (to push test images). */
  mint(repository: string, actions: readonly string[]): string;
  stop(): Promise<void>;
}

const SERVICE = 'signet-test-registry';
const ISSUER = 'signet-test-token-server';

export async function startTokenServer(opts: TokenServerOptions): Promise<RunningTokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-token-server-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=signet-test-token-server',
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const x5c = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const ttl = opts.expiresInSec ?? 300;
  const requests: TokenRequest[] = [];
  const mint = (repository: string, actions: readonly string[]): string => jwt(key, x5c, ttl, [{ type: 'repository', name: repository, actions }]);

  const server = createServer((req, res) => void answer(req, res, opts, requests, (scope) => jwt(key, x5c, ttl, accessFor(scope)), ttl));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    registryAuth: { realm: `http://127.0.0.1:${port}/token`, service: SERVICE, issuer: ISSUER, rootCertBundle: certPath },
    requests,
    mint,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  opts: TokenServerOptions,
  requests: TokenRequest[],
  issue: (scope: string) => string,
  ttl: number,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://token');
  let grant: TokenRequest['grant'];
  let scope: string;
  let granted: boolean;
  if (req.method === 'POST') {
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      chunks.push(chunk as Buffer);
    }
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    grant = 'refresh_token';
    scope = form.get('scope') ?? '';
    granted = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === opts.refreshToken && form.get('service') === SERVICE;
  } else {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, ...pass] = Buffer.from(basic ?? '', 'base64').toString('utf8').split(':');
    grant = basic === undefined ? 'anonymous' : 'basic';
    scope = url.searchParams.getAll('scope').join(' ');
    granted = basic !== undefined && user === opts.username && pass.join(':') === opts.password;
  }
  requests.push({ grant, scope, granted });
  if (!granted) {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    return;
  }
  const token = issue(scope);
  const body = grant === 'refresh_token' ? { access_token: token, expires_in: ttl, scope } : { token, expires_in: ttl };
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** `repository:a/b:pull,push repository:c:pull` → the token's `access` claim. */
function accessFor(scope: string): { type: string; name: string; actions: string[] }[] {
  return scope
    .split(' ')
    .filter((s) => s !== '')
    .map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop() ?? '';
      return { type: type ?? '', name: rest.join(':'), actions: actions.split(',') };
    });
}

function jwt(key: KeyObject, x5c: string, ttl: number, access: readonly object[]): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = b64({ typ: 'JWT', alg: 'ES256', x5c: [x5c] });
  const claims = b64({ iss: ISSUER, sub: 'signet', aud: SERVICE, exp: now + ttl, nbf: now - 5, iat: now, jti: randomUUID(), access });
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${header}.${claims}.${signature}`;
}
