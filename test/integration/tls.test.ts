// Gatekeeper talks to providers over TLS (1.3). With SIGNET_TLS_* set, Signet serves HTTPS only,
// and with SIGNET_TLS_CLIENT_CA it requires a client certificate from that CA.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { startTestSignet, type TestSignet } from '../helpers/signet.ts';

let db: TestDb;
let signet: TestSignet;
let dir: string;
let pems: Record<'ca' | 'clientCert' | 'clientKey', Buffer>;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all from openssl. */
function makePki(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=signet-test-ca');
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    execFileSync('sh', ['-c', `printf '${ext}\\n' > ${name}.ext`], { cwd: dir });
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
}

function post(path: string, body: unknown, opts: { cert?: Buffer; key?: Buffer; maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {}) {
  const url = new URL(path, signet.url);
  return new Promise<{ status: number; body: string; protocol: string | null }>((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca: pems.ca, cert: opts.cert, key: opts.key, maxVersion: opts.maxVersion, headers: { 'content-type': 'application/json' } },
      (res) => {
        const protocol = (res.socket as TLSSocket).getProtocol();
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, protocol }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const providerRequest = { apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: ['nginx'] } };

beforeAll(async () => {
  db = await createTestDb();
  dir = await mkdtemp(join(tmpdir(), 'signet-tls-'));
  makePki();
  pems = { ca: await readFile(join(dir, 'ca.crt')), clientCert: await readFile(join(dir, 'client.crt')), clientKey: await readFile(join(dir, 'client.key')) };
  signet = await startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_ROLES: 'api',
    SIGNET_TLS_CERT: join(dir, 'server.crt'),
    SIGNET_TLS_KEY: join(dir, 'server.key'),
    SIGNET_TLS_CLIENT_CA: join(dir, 'ca.crt'),
  });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('answers a Gatekeeper-style request over TLS 1.3 with a client certificate', async () => {
    expect(signet.url).toMatch(/^https:/);
    const res = await post('/gatekeeper/validate', providerRequest, { cert: pems.clientCert, key: pems.clientKey });
    expect(res.status).toBe(200);
    expect(res.protocol).toBe('TLSv1.3');
    expect(JSON.parse(res.body)).toMatchObject({ kind: 'ProviderResponse', response: { items: [{ key: 'nginx' }] } });
  });

  it('refuses a client without a certificate', async () => {
    await expect(post('/gatekeeper/validate', providerRequest)).rejects.toThrow();
  });

  it('refuses TLS 1.2', async () => {
    await expect(post('/gatekeeper/validate', providerRequest, { cert: pems.clientCert, key: pems.clientKey, maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });

  it('refuses plain HTTP', async () => {
    await expect(fetch(signet.url.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
  });
});
