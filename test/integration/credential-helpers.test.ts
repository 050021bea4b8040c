import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadRegistryCredentials, type HelperCacheOptions } from '../../services/core/oci/auth.ts';
import { createRegistryClient } from '../../services/core/oci/client.ts';
import { pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { startTokenServer, type RunningTokenServer } from '../helpers/token-server.ts';
import { rejection } from '../helpers/registry-errors.ts';

/**
 * The docker credential-helper protocol against a real registry that requires authentication
 * (htpasswd): a helper script on PATH, written here, answers `get` from files the tests change.
 */
const USER = { username: 'signet', password: 'helper-pa:ss wörd' };
const log = pino({ level: 'silent' });

/** A `docker-credential-<name>` that logs the server URL it was asked about and answers from `dir`. */
function helperScript(dir: string): string {
  return `#!/bin/sh
read server
echo "$server" >> ${JSON.stringify(join(dir, 'asked.log'))}
mode=$(cat ${JSON.stringify(join(dir, 'mode'))})
case "$mode" in
  hang) sleep 30 ;;
  fail) echo "the keychain is locked" >&2; exit 3 ;;
  missing) echo "credentials not found in native keychain"; exit 1 ;;
esac
cat ${JSON.stringify(join(dir, 'answer.json'))}
`;
}


describe('docker credential helpers against an htpasswd registry', () => {
  let registry: RunningRegistry;
  let dir: string;
  let image: PushedImage;
  const savedPath = process.env.PATH;

  beforeAll(async () => {
    registry = await startRegistry({ htpasswd: USER });
    image = await pushRandomImage(registry.url, 'private/app', 'v1', { auth: USER });
    dir = await mkdtemp(join(tmpdir(), 'signet-cred-helper-'));
    await writeFile(join(dir, 'docker-credential-signet-test'), helperScript(dir));
    await chmod(join(dir, 'docker-credential-signet-test'), 0o755);
    process.env.PATH = `${dir}${delimiter}${savedPath ?? ''}`;
  });
  afterAll(async () => {
    process.env.PATH = savedPath;
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await writeFile(join(dir, 'mode'), 'answer');
    await writeFile(join(dir, 'asked.log'), '');
    await answer(USER.username, USER.password);
  });

  const answer = (username: string, secret: string) =>
    writeFile(join(dir, 'answer.json'), JSON.stringify({ ServerURL: registry.host, Username: username, Secret: secret }));
  const asked = async () => (await readFile(join(dir, 'asked.log'), 'utf8')).split('\n').filter((l) => l !== '');

  async function clientWith(config: object, cache: HelperCacheOptions = {}) {
    const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, JSON.stringify(config));
    const credentials = await loadRegistryCredentials(file, cache);
    return createRegistryClient({ insecureHosts: [registry.host], timeoutMs: 10_000, retries: 0, maxManifestBytes: 1 << 20, log, credentials });
  }

  it('credHelpers: runs docker-credential-<name> get with the server on stdin, and reuses its answer', async () => {
    const c = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } });
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect((await c.getBlob(registry.host, 'private/app', image.layer.digest, 1 << 20)).equals(image.layer.bytes)).toBe(true);
    expect(await asked()).toEqual([registry.host]);
  });

  it('credsStore: the helper for every registry without its own entry', async () => {
    const c = await clientWith({ credsStore: 'signet-test', auths: { [registry.host]: {} } });
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect(await asked()).toEqual([registry.host]);
  });

  it('asks the helper again once the registry refused its answer (a rotated secret)', async () => {
    await answer(USER.username, 'an-old-password');
    const c = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } });
    expect((await rejection(c.getManifest(registry.host, 'private/app', 'v1'))).code).toBe('UNAUTHORIZED');
    await answer(USER.username, USER.password);
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect(await asked()).toEqual([registry.host, registry.host]);
  });

  it('asks again when the cached answer is older than maxAgeMs', async () => {
    let now = 1_000_000;
    const c = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } }, { now: () => now, maxAgeMs: 60_000 });
    await c.getManifest(registry.host, 'private/app', 'v1');
    now += 59_000;
    await c.getManifest(registry.host, 'private/app', 'v1');
    expect(await asked()).toHaveLength(1);
    now += 2_000;
    await c.getManifest(registry.host, 'private/app', 'v1');
    expect(await asked()).toHaveLength(2);
  });

  it('a helper without credentials for the registry: anonymous, which the registry refuses', async () => {
    await writeFile(join(dir, 'mode'), 'missing');
    const c = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } });
    const err = await rejection(c.getManifest(registry.host, 'private/app', 'v1'));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.status).toBe(401);
  });

  it('clear errors: a helper that is not on PATH, that fails, or that hangs (killed at the timeout, retried as transient)', async () => {
    const missing = await clientWith({ credHelpers: { [registry.host]: 'signet-absent' } });
    const notFound = await rejection(missing.getManifest(registry.host, 'private/app', 'v1'));
    expect(notFound).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/docker-credential-signet-absent \(for 127\.0\.0\.1:\d+\): cannot run it: not found on PATH/) });

    await writeFile(join(dir, 'mode'), 'fail');
    const failing = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } });
    expect(await rejection(failing.getManifest(registry.host, 'private/app', 'v1'))).toMatchObject({
      code: 'UNAUTHORIZED',
      message: expect.stringMatching(/docker-credential-signet-test .*exited with code 3: the keychain is locked/),
    });

    await writeFile(join(dir, 'mode'), 'hang');
    const hanging = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } }, { timeoutMs: 300 });
    expect(await rejection(hanging.getManifest(registry.host, 'private/app', 'v1'))).toMatchObject({
      code: 'TRANSIENT',
      message: expect.stringMatching(/docker-credential-signet-test .*no answer within 300 ms; killed/),
    });
    // Never the secret in a message.
    await writeFile(join(dir, 'mode'), 'answer');
    await answer(USER.username, 'never-print-this-secret');
    const wrong = await clientWith({ credHelpers: { [registry.host]: 'signet-test' } });
    expect((await rejection(wrong.getManifest(registry.host, 'private/app', 'v1'))).message).not.toContain('never-print-this-secret');
  });
});

describe('identity tokens and short-lived access tokens against a token-auth registry', () => {
  const REFRESH = 'refresh-token-of-signet';
  let tokens: RunningTokenServer;
  let registry: RunningRegistry;
  let image: PushedImage;
  let dir: string;

  beforeAll(async () => {
    tokens = await startTokenServer({ ...USER, refreshToken: REFRESH, expiresInSec: 2 });
    registry = await startRegistry({ token: tokens.registryAuth });
    image = await pushRandomImage(registry.url, 'private/app', 'v1', { bearer: tokens.mint('private/app', ['pull', 'push']) });
    dir = await mkdtemp(join(tmpdir(), 'signet-identity-token-'));
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    tokens.requests.length = 0;
  });

  async function clientWith(config: object) {
    const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, JSON.stringify(config));
    const credentials = await loadRegistryCredentials(file);
    return createRegistryClient({ insecureHosts: [registry.host, new URL(tokens.registryAuth.realm).host], timeoutMs: 10_000, retries: 0, maxManifestBytes: 1 << 20, log, credentials });
  }

  it('an identitytoken is traded for access tokens with the OAuth2 refresh-token grant', async () => {
    const c = await clientWith({ auths: { [registry.host]: { identitytoken: REFRESH } } });
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect(tokens.requests).toEqual([{ grant: 'refresh_token', scope: 'repository:private/app:pull', granted: true }]);
  });

  it("a helper's <token> answer is an identity token (how ACR's helper answers)", async () => {
    const saved = process.env.PATH;
    await writeFile(join(dir, 'docker-credential-acr-like'), `#!/bin/sh\nread server\nprintf '{"ServerURL":"%s","Username":"<token>","Secret":"${REFRESH}"}' "$server"\n`);
    await chmod(join(dir, 'docker-credential-acr-like'), 0o755);
    process.env.PATH = `${dir}${delimiter}${saved ?? ''}`;
    try {
      const c = await clientWith({ credHelpers: { [registry.host]: 'acr-like' } });
      expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
      expect(tokens.requests).toEqual([{ grant: 'refresh_token', scope: 'repository:private/app:pull', granted: true }]);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('a refused identity token is a clear UNAUTHORIZED', async () => {
    const c = await clientWith({ auths: { [registry.host]: { identitytoken: 'revoked-refresh-token' } } });
    const err = await rejection(c.getManifest(registry.host, 'private/app', 'v1'));
    expect(err).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/token endpoint 127\.0\.0\.1:\d+ refused the configured credentials \(HTTP 401\)/) });
    expect(err.message).not.toContain('revoked-refresh-token');
  });

  it('user and password still take the GET (Basic) way to the token endpoint', async () => {
    const c = await clientWith({ auths: { [registry.host]: { username: USER.username, password: USER.password } } });
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect(tokens.requests).toEqual([{ grant: 'basic', scope: 'repository:private/app:pull', granted: true }]);
  });

  it('drops an access token before it expires and fetches a fresh one, instead of sending an expired one', async () => {
    const c = await clientWith({ auths: { [registry.host]: { identitytoken: REFRESH } } });
    await c.getManifest(registry.host, 'private/app', 'v1');
    await c.getManifest(registry.host, 'private/app', 'v1');
    expect(tokens.requests).toHaveLength(1);
    // The 2 s token is dropped 1 s before its exp (at most half its lifetime); wait past that.
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await c.getManifest(registry.host, 'private/app', 'v1')).digest).toBe(image.digest);
    expect(tokens.requests).toHaveLength(2);
    expect(tokens.requests.every((r) => r.granted && r.grant === 'refresh_token')).toBe(true);
  });
});
