import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTokenCache,
  CredentialsFileError,
  jwtExpiry,
  loadRegistryCredentials,
  normalizeRegistryHost,
  parseDockerConfig,
  parseTokenResponse,
  parseWwwAuthenticate,
} from './auth.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('parseWwwAuthenticate', () => {
  it('parses a distribution bearer challenge with commas inside quoted values', () => {
    const [c, ...rest] = parseWwwAuthenticate(
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"',
    );
    expect(rest).toEqual([]);
    expect(c?.scheme).toBe('bearer');
    expect(c?.params).toEqual({
      realm: 'https://auth.example.com/token',
      service: 'registry.example.com',
      scope: 'repository:a/b:pull,push',
    });
  });

  it('parses several challenges, unquoted values, escapes, odd spacing and case', () => {
    const cs = parseWwwAuthenticate('BASIC Realm = "say \\"hi\\", ok" , Bearer realm=https://x/t,  error="invalid_token"');
    expect(cs).toEqual([
      { scheme: 'basic', params: { realm: 'say "hi", ok' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', error: 'invalid_token' } },
    ]);
  });

  it('keeps the first of repeated parameters and survives garbage', () => {
    expect(parseWwwAuthenticate('Bearer realm="a",realm="b"')[0]?.params.realm).toBe('a');
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('@@@ ,,, ==')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')[0]?.params.realm).toBe('unterminated');
  });
});

describe('credentials', () => {
  it('normalizes auths keys: URLs, paths, case and Docker Hub aliases', () => {
    expect(normalizeRegistryHost('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeRegistryHost('registry-1.docker.io')).toBe('docker.io');
    expect(normalizeRegistryHost('Docker.IO')).toBe('docker.io');
    expect(normalizeRegistryHost('http://Reg.Example:5000/')).toBe('reg.example:5000');
    expect(normalizeRegistryHost('reg.example:5000/v2/')).toBe('reg.example:5000');
    expect(normalizeRegistryHost('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });

  it('reads auth (base64 user:pass) and username/password entries', () => {
    const store = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:pa:ss') },
          'reg.example:5000': { username: 'u', password: 'p' },
          'ghcr.io': { auth: b64('a:b'), username: 'ignored', password: 'ignored' },
          'empty.example': {},
        },
      }),
    );
    expect(store.get('docker.io')).toEqual({ username: 'hub', password: 'pa:ss' });
    expect(store.get('registry-1.docker.io')).toEqual({ username: 'hub', password: 'pa:ss' });
    expect(store.get('REG.example:5000')).toEqual({ username: 'u', password: 'p' });
    expect(store.get('reg.example')).toBeUndefined();
    expect(store.get('ghcr.io')).toEqual({ username: 'a', password: 'b' });
    expect(store.get('empty.example')).toBeUndefined();
    expect([...store.hosts].sort()).toEqual(['docker.io', 'ghcr.io', 'reg.example:5000']);
  });

  it('reads credHelpers, credsStore and identity tokens', async () => {
    const store = parseDockerConfig(
      JSON.stringify({
        credsStore: 'desktop',
        credHelpers: { 'https://Index.Docker.io/v1/': 'gcloud', '123.dkr.ecr.us-east-1.amazonaws.com': 'ecr-login' },
        auths: { 'x.example': { identitytoken: 'secret-refresh-token' } },
      }),
    );
    expect(store.helpers).toEqual({ byHost: { 'docker.io': 'gcloud', '123.dkr.ecr.us-east-1.amazonaws.com': 'ecr-login' }, store: 'desktop' });
    expect(store.get('x.example')).toEqual({ username: '<token>', password: '', identityToken: 'secret-refresh-token' });
    expect(await store.resolve('x.example')).toEqual({ username: '<token>', password: '', identityToken: 'secret-refresh-token' });
    expect(store.warnings).toEqual([]);
    expect(() => parseDockerConfig('{"credsStore": "../../bin/sh"}')).toThrow(/"credsStore" must be a helper name/);
    expect(() => parseDockerConfig('{"credHelpers": {"a.example": "x y"}}')).toThrow(/credHelpers\["a.example"\] must be a helper name/);
    expect(() => parseDockerConfig('{"credHelpers": []}')).toThrow(/"credHelpers" must be an object/);
    expect(() => parseDockerConfig('{"auths": {"a": {"identitytoken": 5}}}')).toThrow(/identitytoken must be a non-empty string/);
  });

  it('asks a registry\'s own helper first, then its auths entry, then credsStore; shares one run between concurrent asks', async () => {
    const runs: string[] = [];
    const run = (name: string, server: string) => {
      runs.push(`${name} ${server}`);
      return Promise.resolve(name === 'none' ? null : { username: name, password: `from-${name}` });
    };
    const store = parseDockerConfig(
      JSON.stringify({ credsStore: 'store', credHelpers: { 'own.example': 'own', 'empty.example': 'none', 'docker.io': 'hub' }, auths: { 'static.example': { auth: b64('s:p') }, 'empty.example': { auth: b64('e:p') } } }),
      'config.json',
      { run },
    );
    const [a, b] = await Promise.all([store.resolve('own.example'), store.resolve('OWN.example')]);
    expect(a).toEqual({ username: 'own', password: 'from-own' });
    expect(b).toBe(a);
    expect(await store.resolve('static.example')).toEqual({ username: 's', password: 'p' });
    expect(await store.resolve('other.example')).toEqual({ username: 'store', password: 'from-store' });
    expect(await store.resolve('empty.example')).toEqual({ username: 'e', password: 'p' });
    expect(await store.resolve('index.docker.io')).toEqual({ username: 'hub', password: 'from-hub' });
    expect(runs).toEqual(['own own.example', 'store other.example', 'none empty.example', 'hub https://index.docker.io/v1/']);
  });

  it('refreshes a helper\'s JWT secret before it expires, and after invalidate', async () => {
    let now = 1_000_000_000;
    let n = 0;
    const jwt = (expSec: number) => `e30.${Buffer.from(JSON.stringify({ exp: expSec })).toString('base64url')}.sig`;
    const run = () => Promise.resolve({ username: 'oauth2accesstoken', password: `${jwt(now / 1000 + 600)}`, n: ++n });
    const store = parseDockerConfig('{"credsStore": "gar"}', 'config.json', { run, now: () => now, maxAgeMs: 3_600_000 });
    await store.resolve('gar.example');
    expect(n).toBe(1);
    now += 500_000; // 100 s before exp: still good (refreshed 60 s before it)
    await store.resolve('gar.example');
    expect(n).toBe(1);
    now += 41_000; // 59 s before exp
    await store.resolve('gar.example');
    expect(n).toBe(2);
    store.invalidate('gar.example');
    await store.resolve('gar.example');
    expect(n).toBe(3);
  });

  it('jwtExpiry reads exp from JWT-shaped secrets only', () => {
    expect(jwtExpiry(`a.${Buffer.from('{"exp":1700000000}').toString('base64url')}.c`)).toBe(1_700_000_000_000);
    expect(jwtExpiry('not-a-jwt')).toBeNull();
    expect(jwtExpiry('a.%%%.c')).toBeNull();
    expect(jwtExpiry(undefined)).toBeNull();
  });

  it('rejects invalid documents without echoing secrets', () => {
    expect(() => parseDockerConfig('{nope')).toThrow(CredentialsFileError);
    expect(() => parseDockerConfig('[]')).toThrow(/JSON object/);
    expect(() => parseDockerConfig('{"auths": []}')).toThrow(/"auths" must be an object/);
    expect(() => parseDockerConfig('{"auths": {"a": "b"}}')).toThrow(/must be an object/);
    expect(() => parseDockerConfig(JSON.stringify({ auths: { a: { auth: b64('nocolon-secret') } } }))).toThrow(/base64 of "username:password"/);
    expect(() => parseDockerConfig(JSON.stringify({ auths: { a: { auth: '!!!' } } }))).toThrow(/base64/);
    expect(() => parseDockerConfig(JSON.stringify({ auths: { a: { username: 'u' } } }))).toThrow(/password/);
    try {
      parseDockerConfig(JSON.stringify({ auths: { a: { auth: b64('nocolon-secret') } } }));
    } catch (err) {
      expect((err as Error).message).not.toMatch(/nocolon-secret/);
    }
  });

  describe('loadRegistryCredentials', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'signet-auth-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('loads a config.json', async () => {
      const path = join(dir, 'config.json');
      await writeFile(path, JSON.stringify({ auths: { 'r.example': { auth: b64('x:y') } } }));
      expect((await loadRegistryCredentials(path)).get('r.example')).toEqual({ username: 'x', password: 'y' });
    });

    it('names the file and the problem', async () => {
      await expect(loadRegistryCredentials(join(dir, 'missing.json'))).rejects.toThrow(/cannot read .*missing\.json: ENOENT/);
      const bad = join(dir, 'bad.json');
      await writeFile(bad, '{"auths": ');
      await expect(loadRegistryCredentials(bad)).rejects.toThrow(/bad\.json is not valid JSON/);
    });
  });
});

describe('tokens', () => {
  it('parses token or access_token with expires_in (default 60 s)', () => {
    expect(parseTokenResponse(Buffer.from('{"token":"t1","expires_in":300}'))).toEqual({ token: 't1', expiresInSec: 300 });
    expect(parseTokenResponse(Buffer.from('{"access_token":"t2"}'))).toEqual({ token: 't2', expiresInSec: 60 });
    expect(() => parseTokenResponse(Buffer.from('{}'))).toThrow(/without a usable token/);
    expect(() => parseTokenResponse(Buffer.from('{"token":"a\\r\\nX-Evil: 1"}'))).toThrow(/usable token/);
    expect(() => parseTokenResponse(Buffer.from('<html>'))).toThrow(/JSON/);
  });

  it('caches per (host, scope) until expiry minus the margin', () => {
    let now = 1_000_000;
    const cache = createTokenCache(() => now);
    cache.set('Reg:5000', 'repository:a:pull', { token: 't', expiresInSec: 60 });
    expect(cache.get('reg:5000', 'repository:a:pull')).toBe('t');
    expect(cache.get('reg:5000', 'repository:b:pull')).toBeUndefined();
    expect(cache.get('other:5000', 'repository:a:pull')).toBeUndefined();
    now += 49_000;
    expect(cache.get('reg:5000', 'repository:a:pull')).toBe('t');
    now += 1_000;
    expect(cache.get('reg:5000', 'repository:a:pull')).toBeUndefined();
    cache.set('reg', 's', { token: 'short', expiresInSec: 4 });
    now += 1_999;
    expect(cache.get('reg', 's')).toBe('short');
    now += 1;
    expect(cache.get('reg', 's')).toBeUndefined();
  });
});
