import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_TRUSTED_ROOT, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('uses the documented defaults on an empty environment', () => {
    const c = loadConfig({});
    expect(c.database.url).toBe('postgres://postgres@127.0.0.1:5432/signet');
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.http.port).toBe(8080);
    expect(c.roles).toEqual(['ingest', 'worker', 'api']);
    expect(c.webhook).toBeNull();
    expect(c.verification.trustedRootPath).toBe(DEFAULT_TRUSTED_ROOT);
    expect(c.verification.trustedKeysDir).toBeNull();
    expect(c.registry.insecureHosts).toEqual([]);
    expect(c.http.maxWebhookBytes).toBe(1024 * 1024);
    expect(Object.isFrozen(c.registry)).toBe(true);
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
});
