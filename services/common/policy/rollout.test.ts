import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { checkPolicyText } from './check.ts';
import { decide } from './evaluate.ts';
import { explain } from './explain.ts';
import { namespaceIndex } from './namespaces.ts';
import { parsePolicy } from './policy.ts';

const RULE = '      certificate-identity: a@example.com\n      certificate-oidc-issuer: https://accounts.google.com\n';

const POLICY = `
mode: audit
allow_with_verification:
  r.example.com:
    team/*:
${RULE}    team/trial:
${RULE}      mode: warn
scopes:
  prod:
    namespaces: [prod, "prod-*"]
    mode: enforce
  prod-eu:
    namespaces: [prod-eu]
    allow_without_verification:
      r.example.com: [team/legacy]
  team:
    namespaces: ["*"]
exemptions:
  - images: [r.example.com/team/hotfix, "docker.io/library/*"]
    namespaces: ["prod-*"]
    reason: INC-1
    expires: 2030-01-01T00:00:00Z
  - images: [r.example.com/team/**]
    reason: everywhere, already expired
    expires: 2020-01-01T00:00:00+02:00
break_glass:
  namespaces: [prod-eu]
`;

describe('rollout controls in the policy', () => {
  it('a policy without them enforces everywhere, and keeps the version it had', () => {
    const text = `allow_with_verification:\n  r.example.com:\n    team/*:\n${RULE}`;
    const p = parsePolicy(text);
    expect(p).toMatchObject({ mode: 'enforce', scopes: [], exemptions: [], breakGlassNamespaces: [] });
    // The version of a policy is the sha256 of its canonical JSON: absent keys add nothing.
    expect(p.version).toBe(parsePolicy(`${text}\n`).version);
    expect(decide(p, 'r.example.com', 'team/app', null)).toMatchObject({ allowed: false, mode: 'enforce' });
  });

  it('reads modes, scopes (in name order), exemptions and break-glass', () => {
    const p = parsePolicy(POLICY);
    expect(p.mode).toBe('audit');
    expect(p.scopes.map((s) => [s.name, s.mode])).toEqual([
      ['prod', 'enforce'],
      ['prod-eu', null],
      ['team', null],
    ]);
    expect(p.exemptions[1]).toMatchObject({ name: 'exemptions.1', namespaces: null, expires: Date.parse('2019-12-31T22:00:00Z') });
    expect(p.exemptions[0]!.images).toEqual([
      { registry: 'r.example.com', pattern: 'team/hotfix' },
      { registry: 'docker.io', pattern: 'library/*' },
    ]);
  });

  it('puts each namespace in the scope of its most specific glob, whatever the file order', () => {
    const index = namespaceIndex(parsePolicy(POLICY));
    expect(index.scopeOf('prod-eu')?.name).toBe('prod-eu');
    expect(index.scopeOf('prod-us')?.name).toBe('prod');
    expect(index.scopeOf('prod')?.name).toBe('prod');
    expect(index.scopeOf('dev')?.name).toBe('team');
    expect(index.scopeOf(null)).toBeNull();
    expect(index.breakGlassAllowed('prod-eu')).toBe(true);
    expect(index.breakGlassAllowed('prod-us')).toBe(false);
  });

  it('decides once per scope: the mode of the rule, else the scope, else the policy; scope rules win in their namespaces', () => {
    const d = decide(parsePolicy(POLICY), 'r.example.com', 'team/app', null);
    expect(d).toMatchObject({ allowed: false, reason: 'unknown', mode: 'audit' });
    // prod and prod-eu differ (their mode); team is the same as everywhere else and is left out.
    expect(Object.keys(d.scoped ?? {})).toEqual(['prod']);
    expect(d.scoped?.prod).toMatchObject({ mode: 'enforce', rule: 'allow_with_verification.r.example.com.team/*' });
    const trial = decide(parsePolicy(POLICY), 'r.example.com', 'team/trial', null);
    expect(trial.mode).toBe('warn');
    expect(trial.scoped).toBeUndefined();
    const legacy = decide(parsePolicy(POLICY), 'r.example.com', 'team/legacy', null);
    expect(legacy.scoped?.['prod-eu']).toMatchObject({ allowed: true, rule: 'scopes.prod-eu.allow_without_verification.r.example.com.team/legacy' });
  });

  it('applies an exemption by image, namespace and time', () => {
    const index = namespaceIndex(parsePolicy(POLICY));
    const now = Date.parse('2026-06-01T00:00:00Z');
    expect(index.exemptionFor('r.example.com', 'team/hotfix', 'prod-us', now)?.name).toBe('exemptions.0');
    expect(index.exemptionFor('docker.io', 'library/redis', 'prod-us', now)?.name).toBe('exemptions.0');
    expect(index.exemptionFor('r.example.com', 'team/hotfix', 'dev', now)).toBeNull();
    expect(index.exemptionFor('r.example.com', 'team/hotfix', 'prod-us', Date.parse('2030-01-01T00:00:00Z'))).toBeNull();
    // The second one covers every namespace but expired in 2019.
    expect(index.exemptionFor('r.example.com', 'team/other', 'dev', now)).toBeNull();
    expect(index.exemptionFor('r.example.com', 'team/other', 'dev', Date.parse('2019-12-31T21:59:59Z'))?.name).toBe('exemptions.1');
  });

  it('policy check points at each problem of the new keys with line and column', () => {
    const text = [
      'mode: block', // 1
      'allow_without_verification:',
      '  docker.io: [library/*]',
      'scopes:',
      '  Prod:', // 5
      '    namespaces: [prod]',
      '  other:',
      '    namespaces: [prod, "UPPER"]', // 8
      'exemptions:',
      '  - images: [docker.io/library/nginx]', // 10
      '    reason: ""',
      '  - images: [nginx]',
      '    reason: why',
      '    expires: tomorrow', // 14
      'break_glass:',
      '  namespaces: []', // 16
      '',
    ].join('\n');
    const r = checkPolicyText(text, 'p.yaml');
    expect('problems' in r).toBe(true);
    const where = 'problems' in r ? r.problems.map((p) => [p.line, p.column, p.path]) : [];
    expect(where).toEqual(
      expect.arrayContaining([
        [1, 7, 'mode'],
        [8, 24, 'scopes.other.namespaces.1'],
        [10, 5, 'exemptions.0.expires'],
        [11, 13, 'exemptions.0.reason'],
        [12, 14, 'exemptions.1.images.0'],
        [14, 14, 'exemptions.1.expires'],
        [16, 3, 'break_glass.namespaces'],
      ]),
    );
    const semantic = checkPolicyText(
      'allow_without_verification:\n  docker.io: [library/*]\nscopes:\n  Prod:\n    namespaces: [prod]\n  other:\n    namespaces: [prod]\n',
      'p.yaml',
    );
    expect('problems' in semantic && semantic.problems.map((p) => [p.line, p.path, p.message])).toEqual([
      [4, 'scopes.Prod', expect.stringContaining('DNS label')],
      [7, 'scopes.other.namespaces.0', expect.stringContaining('already in scope Prod')],
    ]);
  });
});

describe('schema/policy.schema.json and the rollout controls', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  const validate = ajv.compile(JSON.parse(readFileSync(fileURLToPath(new URL('../../../schema/policy.schema.json', import.meta.url)), 'utf8')) as object);

  it('accepts what parsePolicy accepts', () => {
    expect(validate(parseYaml(POLICY))).toBe(true);
  });

  it.each([
    ['an unknown mode', 'mode: block\nallow_without_verification: { docker.io: [library/*] }'],
    ['an exemption without expires', 'exemptions: [{ images: [docker.io/library/nginx], reason: x }]'],
    ['an exemption without a zone', 'exemptions: [{ images: [docker.io/library/nginx], reason: x, expires: "2030-01-01T00:00:00" }]'],
    ['a scope without namespaces', 'scopes: { prod: { mode: warn } }'],
    ['a rule with an unknown mode', `allow_with_verification:\n  r.example.com:\n    team/*:\n${RULE}      mode: off`],
  ])('rejects %s, as parsePolicy does', (_name, text) => {
    expect(validate(parseYaml(text))).toBe(false);
    expect(() => parsePolicy(text)).toThrow();
  });
});

describe('explain', () => {
  const sig = (subject: string, outcome: 'verified' | 'invalid_signature' = 'verified') => ({
    outcome,
    reason: outcome === 'verified' ? null : 'signature does not verify',
    identity: { kind: 'email' as const, subject, issuer: 'https://accounts.google.com' },
    claims: {},
    keyFingerprint: null,
    tlog: true,
    annotations: null,
  });

  it('says of each signature whether it counts and why, and whether each requirement is met', () => {
    const facts = { registry: 'r.example.com', repository: 'team/app', status: 'verified' as const, signatures: [sig('a@example.com'), sig('b@example.com'), sig('a@example.com', 'invalid_signature')] };
    const e = explain(parsePolicy(POLICY), 'r.example.com', 'team/app', facts, 'prod-us', Date.parse('2026-06-01T00:00:00Z'));
    expect(e).toMatchObject({ scope: 'prod', rule: 'allow_with_verification.r.example.com.team/*', mode: 'enforce', decision: { allowed: true, reason: 'verified' }, indexed: true });
    expect(e.requirements).toEqual([{ kind: 'signature', description: '1 signer: identity a@example.com, issuer https://accounts.google.com', satisfied: true, detail: '1 of 1: a@example.com' }]);
    expect(e.evidence.map((x) => [x.counts, x.why])).toEqual([
      [true, 'verified and matches the rule as a@example.com'],
      [false, 'verified, but identity b@example.com does not match'],
      [false, 'not verified: invalid_signature (signature does not verify)'],
    ]);
  });
});
