// The Kubernetes manifests in deploy/ cannot be applied here (no cluster); this checks what can be
// checked offline: they parse, their settings are valid Signet configuration, the policy parses,
// and every URL path they call is one Signet serves.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../services/common/config.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { demoPolicy } from '../scripts/lib/demo-policy.ts';

const DIR = fileURLToPath(new URL('../deploy/kubernetes/', import.meta.url));
const docs = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(`${DIR}${f}`, 'utf8')).map((d) => ({ file: f, doc: d.toJS() as Record<string, any> })));

const SERVED = ['/webhooks/distribution', '/gatekeeper/validate', '/gatekeeper/mutate', '/admission/validate', '/admission/mutate', '/verify', '/readyz', '/healthz'];

describe('deploy/kubernetes', () => {
  it('parses, and every document is a Kubernetes object', () => {
    expect(docs.length).toBeGreaterThan(10);
    for (const { file, doc } of docs) {
      expect(typeof doc.apiVersion, file).toBe('string');
      expect(typeof doc.kind, file).toBe('string');
    }
  });

  it('configures each container with a valid Signet configuration', () => {
    const deployments = docs.filter((d) => d.doc.kind === 'Deployment');
    expect(deployments.map((d) => d.doc.metadata.name).sort()).toEqual(['signet-api', 'signet-ingest', 'signet-worker']);
    for (const { doc } of deployments) {
      const env = Object.fromEntries((doc.spec.template.spec.containers[0].env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
      expect(() => loadConfig({ ...env, SIGNET_WEBHOOK_TOKEN: 'x'.repeat(20) })).not.toThrow();
    }
  });

  it('ships a policy that parses', () => {
    const cm = docs.find((d) => d.doc.kind === 'ConfigMap')!.doc;
    expect(() => parsePolicy(cm.data['policy.yaml'] as string)).not.toThrow();
  });

  it('calls only paths Signet serves, and admission fails closed', () => {
    const paths = [
      ...docs.filter((d) => d.doc.kind.endsWith('WebhookConfiguration')).flatMap((d) => d.doc.webhooks.map((w: any) => w.clientConfig.service.path)),
      ...docs.filter((d) => d.doc.kind === 'Provider').map((d) => new URL(d.doc.spec.url).pathname),
    ];
    expect(paths.length).toBe(4);
    for (const p of paths) {
      expect(SERVED).toContain(p);
    }
    for (const d of docs.filter((x) => x.doc.kind.endsWith('WebhookConfiguration'))) {
      expect(d.doc.webhooks.every((w: any) => w.failurePolicy === 'Fail')).toBe(true);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parseAllDocuments(readFileSync(fileURLToPath(new URL('../docker-compose.yml', import.meta.url)), 'utf8'))[0]!.toJS() as Record<string, any>;
  const demo = (f: string) => readFileSync(fileURLToPath(new URL(`../deploy/demo/${f}`, import.meta.url)), 'utf8');

  it("mounts the demo policy, the same rules as npm run demo's, for the compose registry", () => {
    const signet = compose.services.signet;
    expect(signet.volumes).toContain('./deploy/demo:/etc/signet/demo:ro');
    expect(signet.environment.SIGNET_POLICY).toBe('/etc/signet/demo/policy.yaml');
    expect(demo('policy.yaml')).toBe(demoPolicy('localhost:5000', demo('cosign.pub')));
    expect(() => parsePolicy(demo('policy.yaml'))).not.toThrow();
  });
});

describe('docker-compose.yml services', () => {
  const compose = parse(readFileSync(fileURLToPath(new URL('../docker-compose.yml', import.meta.url)), 'utf8')) as {
    services: Record<string, { healthcheck?: { test: string[] }; volumes?: string[]; environment?: Record<string, string> }>;
    volumes: Record<string, unknown>;
  };

  it('checks the health of every service and keeps the data in named volumes', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.healthcheck?.test[0], name).toBe('CMD');
    }
    const named = Object.values(compose.services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(':')[0]!).filter((v) => !v.startsWith('.')));
    expect(named.sort()).toEqual(Object.keys(compose.volumes).sort());
  });

  it('configures Signet with a valid configuration', () => {
    expect(() => loadConfig(compose.services.signet!.environment!)).not.toThrow();
  });
});

describe('deploy/kubernetes secrets', () => {
  it('ship CHANGE-ME placeholders that fail configuration validation until they are edited', () => {
    const secret = docs.find((d) => d.doc.kind === 'Secret' && d.doc.metadata.name === 'signet')!.doc;
    const env = secret.stringData as Record<string, string>;
    expect(() => loadConfig(env)).toThrow(/DATABASE_URL: still holds the CHANGE-ME placeholder/);
    const edited = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replaceAll('CHANGE-ME', 'a-real-secret-5f2c')]));
    expect(() => loadConfig(edited)).not.toThrow();
  });
});
