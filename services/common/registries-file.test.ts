import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';
import { parseRegistriesFile, RegistriesFileError } from './registries-file.ts';

const SECRET = 's'.repeat(20);

function issues(text: string): readonly string[] {
  try {
    parseRegistriesFile(text, () => SECRET);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistriesFileError);
    return (err as RegistriesFileError).issues;
  }
  throw new Error('expected the file to be refused');
}

describe('parseRegistriesFile', () => {
  it('reads several registries with endpoints, credentials, webhook sources and secrets', () => {
    const regs = parseRegistriesFile(
      `registries:
  - host: Harbor.Example.com
    credentials: { username: signet, passwordFile: /run/secrets/harbor }
    webhook: { source: harbor, secretFile: /run/secrets/harbor-webhook }
  - host: 127.0.0.1:5000
    endpoint: http://registry:5000/
    insecure: true
    reconcile: false
    concurrency: 2
    webhook: { source: distribution, secret: ${SECRET} }
`,
      (path) => `${path.endsWith('webhook') ? SECRET : 'pw'}\n`.trim(),
    );
    expect(regs).toEqual([
      { host: 'harbor.example.com', endpoint: null, insecure: false, credentials: { username: 'signet', password: 'pw' }, webhook: { source: 'harbor', secret: SECRET }, reconcile: true, concurrency: null, mirrorOf: null, signaturesRepository: null },
      { host: '127.0.0.1:5000', endpoint: 'http://registry:5000', insecure: true, credentials: null, webhook: { source: 'distribution', secret: SECRET }, reconcile: false, concurrency: 2, mirrorOf: null, signaturesRepository: null },
    ]);
  });

  it('reads a signatures repository (COSIGN_REPOSITORY) and a mirror of another registry', () => {
    const [src, mirror] = parseRegistriesFile(
      'registries:\n  - host: reg.example\n    signaturesRepository: Sigs.Example:5000/team/signatures\n  - host: mirror.example\n    mirrorOf: { registry: index.docker.io, prefix: cache/hub }\n',
    );
    expect(src).toMatchObject({ signaturesRepository: { registry: 'sigs.example:5000', repository: 'team/signatures' }, mirrorOf: null });
    expect(mirror).toMatchObject({ signaturesRepository: null, mirrorOf: { registry: 'docker.io', prefix: 'cache/hub' } });
    expect(issues('registries:\n  - host: a.example\n    signaturesRepository: just-a-repo\n')).toEqual([expect.stringMatching(/^registries\.0\.signaturesRepository: expected host\/repository/)]);
    expect(issues('registries:\n  - host: a.example\n    mirrorOf: { registry: a.example }\n')).toEqual(['registries.0.mirrorOf.registry: a registry cannot mirror itself']);
    expect(issues('registries:\n  - host: a.example\n    mirrorOf: { registry: b.example, prefix: /x }\n')).toEqual([expect.stringMatching(/^registries\.0\.mirrorOf\.prefix: expected a repository path/)]);
  });

  it('names the path of every problem', () => {
    expect(
      issues(`registries:
  - host: "not a host"
    webhook: { source: nexus, secret: x }
  - host: a.example
    insecure: "yes"
    credentials: { username: u }
  - host: a.example
    colour: blue
`),
    ).toEqual([
      'registries.0.host: expected host or host:port, as image references name the registry',
      expect.stringMatching(/^registries\.0\.webhook\.source: Invalid option: expected one of "distribution"\|"harbor"/),
      'registries.1.insecure: Invalid input: expected boolean, received string',
      expect.stringMatching(/^registries\.2: Unrecognized key: "colour"/),
    ]);
    expect(issues('registries:\n  - host: a.example\n    credentials: { username: u }\n')).toEqual(['registries.0.credentials: set exactly one of password and passwordFile']);
    expect(issues(`registries:\n  - host: a.example\n  - host: A.example\n`)).toEqual(['registries.1.host: a.example is already configured at registries.0']);
    expect(issues('registries:\n  - host: a.example\n    webhook: { source: github, secret: short }\n')).toEqual(['registries.0.webhook.secret: must be at least 16 characters']);
    expect(issues('registries: [')[0]).toMatch(/^not YAML: /);
    expect(issues('hello: world')[0]).toMatch(/^\(file\): Unrecognized key: "hello"|^registries: /);
  });
});

describe('loadConfig with SIGNET_REGISTRIES_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-registries-'));

  it('merges the file with the environment: insecure hosts, endpoints, credentials, webhook secrets', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      `registries:\n  - host: reg.local:5000\n    insecure: true\n    endpoint: http://reg:5000\n    credentials: { username: u, password: p }\n    webhook: { source: quay, secret: ${SECRET} }\n`,
    );
    const c = loadConfig({
      SIGNET_REGISTRIES_FILE: file,
      SIGNET_INSECURE_REGISTRIES: 'other:5000',
      SIGNET_REGISTRY_ENDPOINTS: 'other:5000=http://other:5000',
      SIGNET_WEBHOOK_SECRET_GITHUB: 'g'.repeat(16),
      SIGNET_WEBHOOK_TOKEN: 't'.repeat(16),
      SIGNET_RECONCILE_INTERVAL: '30s',
    });
    expect(c.registry.insecureHosts).toEqual(['other:5000', 'reg.local:5000']);
    expect(c.registry.endpoints).toEqual({ 'other:5000': 'http://other:5000', 'reg.local:5000': 'http://reg:5000' });
    expect(c.registry.credentials).toEqual([['reg.local:5000', { username: 'u', password: 'p' }]]);
    expect(c.webhookSecrets.filter((s) => s.source === 'quay')).toEqual([
      { source: 'quay', secret: SECRET, registry: 'reg.local:5000' },
      { source: 'quay', secret: 't'.repeat(16), registry: null },
    ]);
    expect(c.webhookSecrets.filter((s) => s.source === 'github').map((s) => s.secret)).toEqual(['g'.repeat(16), 't'.repeat(16)]);
    expect(c.reconcile).toEqual({ intervalMs: 30_000 });
  });

  it('fails at start with the file named and every problem listed', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'registries:\n  - host: a.example\n    webhook: { source: harbor, secretFile: /nonexistent/secret }\n');
    expect(() => loadConfig({ SIGNET_REGISTRIES_FILE: file })).toThrow(ConfigError);
    expect(() => loadConfig({ SIGNET_REGISTRIES_FILE: file })).toThrow(`SIGNET_REGISTRIES_FILE (${file}): registries.0.webhook.secretFile: cannot read /nonexistent/secret: ENOENT`);
    expect(() => loadConfig({ SIGNET_REGISTRIES_FILE: join(dir, 'missing.yaml') })).toThrow(/cannot read the file: ENOENT/);
    expect(() => loadConfig({ SIGNET_RECONCILE_INTERVAL: 'often' })).toThrow(/SIGNET_RECONCILE_INTERVAL: expected a duration/);
    expect(loadConfig({ SIGNET_RECONCILE_INTERVAL: '0' }).reconcile.intervalMs).toBe(0);
    expect(loadConfig({}).reconcile.intervalMs).toBe(15 * 60_000);
  });
});
