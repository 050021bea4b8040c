import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CRAWL_LIMITS, DEFAULT_TRUSTED_ROOTS, defaultVerifyThreads, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('uses the documented defaults on an empty environment', () => {
    const c = loadConfig({});
    expect(c.database.url).toBe('postgres://postgres@127.0.0.1:5432/signet');
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.http.port).toBe(8080);
    expect(c.roles).toEqual(['ingest', 'worker', 'api']);
    expect(c.webhook).toBeNull();
    expect(c.verification.trustedRootPaths).toEqual(DEFAULT_TRUSTED_ROOTS);
    expect(c.verification.trustedKeysDir).toBeNull();
    expect(c.registry.insecureHosts).toEqual([]);
    expect(c.http.maxWebhookBytes).toBe(8 * 1024 * 1024);
    expect(Object.isFrozen(c.registry)).toBe(true);
  });

  it('reads a Redis Cluster, Sentinel, a read replica and the decision feed length', () => {
    const single = loadConfig({});
    expect(single.redis).toMatchObject({ topology: { kind: 'single' }, queuePrefix: 'signet', feedMaxLen: 100_000, waitReplicas: 0 });
    expect(single.database.readUrl).toBeNull();
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001,[::1]:7002', SIGNET_QUEUE_PREFIX: 'sig', SIGNET_DECISION_FEED_LENGTH: '5000' });
    expect(cluster.redis).toMatchObject({
      topology: { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: 'redis-b', port: 7001 }, { host: '::1', port: 7002 }] },
      // BullMQ on a cluster: the prefix is the hash tag, so each queue's keys share a slot.
      queuePrefix: '{sig}',
      feedMaxLen: 5000,
    });
    const sentinel = loadConfig({ REDIS_SENTINELS: 's1:26379,s2', REDIS_SENTINEL_NAME: 'main', SIGNET_REDIS_WAIT_REPLICAS: '1', DATABASE_READ_URL: 'postgres://r@replica:5432/signet' });
    expect(sentinel.redis).toMatchObject({ topology: { kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 6379 }], name: 'main' }, waitReplicas: 1 });
    expect(sentinel.database.readUrl).toBe('postgres://r@replica:5432/signet');
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINELS: 'b:2' })).toThrow(/set one, not both/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:1', SIGNET_REDIS_WAIT_REPLICAS: '1' })).toThrow(/not supported with REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ SIGNET_DECISION_FEED_LENGTH: '10' })).toThrow(/SIGNET_DECISION_FEED_LENGTH/);
  });

  it('parses lists, roles and registry endpoints', () => {
    const c = loadConfig({
      SIGNET_ROLES: 'worker, api',
      SIGNET_INSECURE_REGISTRIES: '127.0.0.1:5000, Registry.Local',
      SIGNET_REGISTRY_ENDPOINTS: 'localhost:5000=http://registry:5000/',
      SIGNET_WEBHOOK_TOKEN: 'x'.repeat(16),
      PORT: '0',
    });
    expect(c.roles).toEqual(['worker', 'api']);
    expect(c.registry.insecureHosts).toEqual(['127.0.0.1:5000', 'registry.local']);
    expect(c.registry.endpoints).toEqual({ 'localhost:5000': 'http://registry:5000' });
    expect(c.webhook).toEqual({ token: 'x'.repeat(16) });
    expect(c.http.port).toBe(0);
  });

  it('bounds every crawl, by default far above real registries, and lets each bound be set', () => {
    expect(loadConfig({}).crawl).toEqual(DEFAULT_CRAWL_LIMITS);
    const c = loadConfig({ SIGNET_CRAWL_MAX_LIST_PAGES: '5', SIGNET_CRAWL_MAX_LIST_ENTRIES: '50', SIGNET_CRAWL_MAX_PASS_PAGES: '500', SIGNET_CRAWL_MAX_PASS_ENTRIES: '5000' });
    expect(c.crawl).toEqual({ listPages: 5, listEntries: 50, passPages: 500, passEntries: 5000 });
    expect(() => loadConfig({ SIGNET_CRAWL_MAX_PASS_PAGES: '0' })).toThrow(/SIGNET_CRAWL_MAX_PASS_PAGES/);
  });

  it('limits the bodies of signing sources and how many are read at once', () => {
    const c = loadConfig({});
    expect(c.http.maxSignedWebhookBytes).toBe(1024 * 1024);
    expect(c.http.maxUnverifiedWebhooks).toBe(16);
    expect(() => loadConfig({ SIGNET_MAX_UNVERIFIED_WEBHOOKS: '0' })).toThrow(ConfigError);
  });

  it('times slow clients out, their headers no later than the whole request', () => {
    expect(loadConfig({}).http.timeouts).toEqual({ requestMs: 30_000, headersMs: 10_000 });
    expect(loadConfig({ SIGNET_HTTP_REQUEST_TIMEOUT_MS: '5000' }).http.timeouts).toEqual({ requestMs: 5_000, headersMs: 5_000 });
    expect(loadConfig({ SIGNET_HTTP_REQUEST_TIMEOUT_MS: '5000', SIGNET_HTTP_HEADERS_TIMEOUT_MS: '2000' }).http.timeouts).toEqual({ requestMs: 5_000, headersMs: 2_000 });
    expect(() => loadConfig({ SIGNET_HTTP_REQUEST_TIMEOUT_MS: '5000', SIGNET_HTTP_HEADERS_TIMEOUT_MS: '6000' })).toThrow(/SIGNET_HTTP_HEADERS_TIMEOUT_MS: must not exceed SIGNET_HTTP_REQUEST_TIMEOUT_MS/);
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', SIGNET_WEBHOOK_TOKEN: '' }).http.port).toBe(8080);
  });

  it('reports every problem at once, naming each variable', () => {
    let error: unknown;
    try {
      loadConfig({
        DATABASE_URL: 'mysql://x',
        PORT: 'eighty',
        SIGNET_WEBHOOK_TOKEN: 'short',
        SIGNET_ROLES: 'ingest,bogus',
        SIGNET_INSECURE_REGISTRIES: 'http://x/',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.join('\n');
    for (const name of ['DATABASE_URL', 'PORT', 'SIGNET_WEBHOOK_TOKEN', 'SIGNET_ROLES', 'SIGNET_INSECURE_REGISTRIES']) {
      expect(issues).toContain(name);
    }
  });

  it('reads secrets from <NAME>_FILE, refuses both or an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-config-'));
    writeFileSync(join(dir, 'token'), 'token-from-a-file-0123456789\n');
    writeFileSync(join(dir, 'api'), 'api-token-0123456789abcdef,second-token-0123456789');
    const c = loadConfig({ SIGNET_WEBHOOK_TOKEN_FILE: join(dir, 'token'), SIGNET_API_TOKENS_FILE: join(dir, 'api') });
    expect(c.webhook).toEqual({ token: 'token-from-a-file-0123456789' });
    expect(c.api.tokens).toEqual(['api-token-0123456789abcdef', 'second-token-0123456789']);
    expect(() => loadConfig({ SIGNET_WEBHOOK_TOKEN: 'x'.repeat(16), SIGNET_WEBHOOK_TOKEN_FILE: join(dir, 'token') })).toThrow(
      'SIGNET_WEBHOOK_TOKEN and SIGNET_WEBHOOK_TOKEN_FILE: set one, not both',
    );
    expect(() => loadConfig({ DATABASE_URL_FILE: join(dir, 'missing') })).toThrow(/DATABASE_URL_FILE: cannot read/);
  });

  it('allows the registries the configuration names, plus SIGNET_ALLOWED_REGISTRIES', () => {
    const c = loadConfig({
      SIGNET_ALLOWED_REGISTRIES: 'ghcr.io, *.dkr.ecr.us-east-1.amazonaws.com',
      SIGNET_INSECURE_REGISTRIES: '127.0.0.1:5000',
      SIGNET_REGISTRY_ENDPOINTS: 'localhost:5000=http://registry:5000',
      SIGNET_LEARN_REGISTRIES: 'docker.io',
      SIGNET_ALLOWED_REDIRECT_HOSTS: '*.s3.amazonaws.com',
    });
    expect([...c.registry.allowed].sort()).toEqual(['*.dkr.ecr.us-east-1.amazonaws.com', '127.0.0.1:5000', 'docker.io', 'ghcr.io', 'localhost:5000']);
    expect(c.registry.redirectHosts).toEqual(['*.s3.amazonaws.com']);
    expect(loadConfig({}).registry.allowed).toEqual([]);
    expect(() => loadConfig({ SIGNET_ALLOWED_REGISTRIES: 'https://ghcr.io' })).toThrow(ConfigError);
    expect(() => loadConfig({ SIGNET_ALLOWED_REGISTRIES: '*' })).toThrow(ConfigError);
  });

  it('verifies on one thread per core but one (at most 4) unless told otherwise; 0 verifies on the worker thread', () => {
    expect([1, 2, 4, 5, 64].map(defaultVerifyThreads)).toEqual([0, 1, 3, 4, 4]);
    expect(loadConfig({}).verification.threads).toBe(defaultVerifyThreads(availableParallelism()));
    expect(loadConfig({ SIGNET_VERIFY_THREADS: '0' }).verification.threads).toBe(0);
    expect(loadConfig({ SIGNET_VERIFY_THREADS: '12' }).verification.threads).toBe(12);
    expect(() => loadConfig({ SIGNET_VERIFY_THREADS: '-1' })).toThrow(/SIGNET_VERIFY_THREADS/);
    expect(() => loadConfig({ SIGNET_VERIFY_THREADS: 'all' })).toThrow(/SIGNET_VERIFY_THREADS/);
  });

  it('denies unknown images unless told otherwise', () => {
    expect(loadConfig({}).decisions.allowUnknown).toBe(false);
    expect(loadConfig({ SIGNET_UNKNOWN_IMAGES: 'allow' }).decisions.allowUnknown).toBe(true);
    expect(() => loadConfig({ SIGNET_UNKNOWN_IMAGES: 'maybe' })).toThrow(ConfigError);
  });

  it('keeps webhook deliveries 30 days unless told otherwise; 0 keeps them forever', () => {
    const day = 24 * 3_600_000;
    expect(loadConfig({}).deliveries.retentionMs).toBe(30 * day);
    expect(loadConfig({ SIGNET_DELIVERY_RETENTION: '7d' }).deliveries.retentionMs).toBe(7 * day);
    expect(loadConfig({ SIGNET_DELIVERY_RETENTION: '12h' }).deliveries.retentionMs).toBe(12 * 3_600_000);
    expect(loadConfig({ SIGNET_DELIVERY_RETENTION: '0' }).deliveries.retentionMs).toBe(0);
    expect(() => loadConfig({ SIGNET_DELIVERY_RETENTION: '1 month' })).toThrow(/SIGNET_DELIVERY_RETENTION/);
    expect(() => loadConfig({ SIGNET_DELIVERY_RETENTION: '3651d' })).toThrow(/SIGNET_DELIVERY_RETENTION: at most 3650d/);
  });
});

describe('placeholder secrets', () => {
  it('refuses every secret still holding CHANGE-ME, naming each variable and never its value', () => {
    let error: unknown;
    try {
      loadConfig({
        DATABASE_URL: 'postgres://signet:CHANGE-ME@db.example:5432/signet',
        SIGNET_WEBHOOK_TOKEN: 'CHANGE-ME-to-a-long-random-token',
        SIGNET_API_TOKENS: 'a-real-token-0123456789,CHANGE-ME-to-a-long-random-read-token',
        SIGNET_WEBHOOK_SECRET_HARBOR: 'harbor-secret-CHANGE-ME-please',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    expect(issues.map((i) => i.split(':')[0])).toEqual(['DATABASE_URL', 'SIGNET_WEBHOOK_TOKEN', 'SIGNET_API_TOKENS', 'SIGNET_WEBHOOK_SECRET_HARBOR']);
    expect(issues[0]).toContain('CHANGE-ME placeholder');
    expect((error as ConfigError).message).not.toContain('to-a-long-random');
  });

  it('finds the placeholder in secret files and in the registries file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-config-'));
    writeFileSync(join(dir, 'token'), 'CHANGE-ME-to-a-long-random-token\n');
    writeFileSync(
      join(dir, 'registries.yaml'),
      'registries:\n  - host: harbor.example.com\n    credentials: { username: signet, password: CHANGE-ME }\n    webhook: { source: harbor, secret: CHANGE-ME-harbor-webhook-secret }\n',
    );
    expect(() => loadConfig({ SIGNET_WEBHOOK_TOKEN_FILE: join(dir, 'token') })).toThrow(/SIGNET_WEBHOOK_TOKEN: still holds the CHANGE-ME placeholder/);
    let error: unknown;
    try {
      loadConfig({ SIGNET_REGISTRIES_FILE: join(dir, 'registries.yaml') });
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).issues).toEqual([
      expect.stringMatching(/^SIGNET_REGISTRIES_FILE: harbor.example.com: webhook secret: still holds/),
      expect.stringMatching(/^SIGNET_REGISTRIES_FILE: harbor.example.com: credentials password: still holds/),
    ]);
  });

  it('accepts secrets without it, and leaves non-secret settings alone', () => {
    const c = loadConfig({ SIGNET_WEBHOOK_TOKEN: 'change-me-to-a-long-random-token', SIGNET_ALLOWED_REGISTRIES: 'registry.example.com', SIGNET_QUEUE_PREFIX: 'CHANGE-ME' });
    expect(c.webhook).toEqual({ token: 'change-me-to-a-long-random-token' });
  });
});

describe('admission record settings', () => {
  it('records by default, with a 10000-record buffer and 30 days of retention', () => {
    expect(loadConfig({}).admissions).toEqual({ record: { bufferSize: 10_000 }, retentionMs: 30 * 86_400_000 });
  });

  it('can be turned off, resized and kept forever; a bad value is refused', () => {
    expect(loadConfig({ SIGNET_ADMISSION_RECORD: 'off', SIGNET_ADMISSION_RETENTION: '0' }).admissions).toEqual({ record: null, retentionMs: 0 });
    expect(loadConfig({ SIGNET_ADMISSION_RECORD_BUFFER: '50', SIGNET_ADMISSION_RETENTION: '12h' }).admissions).toEqual({ record: { bufferSize: 50 }, retentionMs: 12 * 3_600_000 });
    expect(() => loadConfig({ SIGNET_ADMISSION_RECORD_BUFFER: '0' })).toThrow(/SIGNET_ADMISSION_RECORD_BUFFER/);
    expect(() => loadConfig({ SIGNET_ADMISSION_RECORD: 'maybe' })).toThrow(/SIGNET_ADMISSION_RECORD/);
  });
});
