import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { readFixture } from '../../../test/helpers/fixtures.ts';
import type { ManifestFacts, SignatureFact } from '../domain/decision.ts';
import { decide, matchPolicy } from './evaluate.ts';
import { parsePolicy, PolicyConfigError } from './policy.ts';

/** The sample configurations of Styra DAS's cosign snippet documentation (test/fixtures/styra). */
const SAMPLE = readFixture('styra/verification-config-sample.json').toString('utf8');
const OVERLAPPING = readFixture('styra/verification-config-overlapping.json').toString('utf8');

function parseError(text: string): string[] {
  try {
    parsePolicy(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyConfigError);
    return [...(err as PolicyConfigError).issues];
  }
  throw new Error('expected the policy to be rejected');
}

function keyless(subject: string, issuer: string, extra: Partial<SignatureFact> = {}): SignatureFact {
  return {
    outcome: 'verified',
    reason: null,
    identity: { kind: subject.includes('://') ? 'uri' : 'email', subject, issuer },
    claims: {},
    keyFingerprint: null,
    tlog: true,
    annotations: null,
    ...extra,
  };
}

function facts(signatures: SignatureFact[], registry = 'docker.io', repository = 'ubuntu/nginx'): ManifestFacts {
  return { registry, repository, status: signatures.some((s) => s.outcome === 'verified') ? 'verified' : signatures.length === 0 ? 'unsigned' : signatures[0]!.outcome, signatures };
}

describe('parsePolicy', () => {
  it("accepts Styra's sample configuration, with hosts normalised and a stable version", () => {
    const p = parsePolicy(SAMPLE, 'styra-sample.json');
    expect([...p.withVerification.keys()]).toEqual(['docker.io', 'ecr.io', 'gcr.io']);
    expect(p.withVerification.get('ecr.io')?.[0]).toMatchObject({ kind: 'key', ignoreTlog: true, pattern: 'xyz/busybox' });
    expect(p.withoutVerification.get('gcr.io')).toEqual(['my-proj-*/base-*-image']);
    expect(p.version).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Same content, other order and format (YAML): same version.
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(SAMPLE) as object).reverse()), null, 4);
    expect(parsePolicy(reordered).version).toBe(p.version);
  });

  it('reads YAML', () => {
    const p = parsePolicy(`
allow_with_verification:
  index.docker.io:
    team-a/*:
      certificate-identity: alice@example.com
      certificate-oidc-issuer: https://accounts.google.com
      annotations: { env: prod }
      threshold: 1
allow_without_verification:
  docker.io: [library/*]
`);
    expect(p.withVerification.get('docker.io')?.[0]).toMatchObject({ kind: 'keyless', annotations: { env: 'prod' } });
  });

  it.each([
    ['an identity without an issuer', { 'certificate-identity': 'a@b.c' }, 'certificate-oidc-issuer'],
    ['an issuer without an identity', { 'certificate-oidc-issuer': 'https://x.example' }, 'certificate-identity'],
    ['only GitHub claims', { 'certificate-github-workflow-repository': 'o/r' }, 'must name certificate-identity'],
    ['exact and regexp together', { 'certificate-identity': 'a', 'certificate-identity-regexp': 'a', 'certificate-oidc-issuer': 'https://x.example' }, 'not both'],
    ['a broken regexp', { 'certificate-identity-regexp': '(', 'certificate-oidc-issuer': 'https://x.example' }, 'not an RE2 regular expression'],
    ['a JS-only regexp (look-behind)', { 'certificate-identity-regexp': '(?<=a)b', 'certificate-oidc-issuer': 'https://x.example' }, 'not an RE2 regular expression'],
    ['an identity regexp accepting anyone (.*)', { 'certificate-identity-regexp': '.*', 'certificate-oidc-issuer': 'https://x.example' }, 'accepts any identity'],
    ['an identity regexp accepting anyone (.+)', { 'certificate-identity-regexp': '.+', 'certificate-oidc-issuer': 'https://x.example' }, 'accepts any identity'],
    ['an identity regexp accepting anyone (alternation)', { 'certificate-identity-regexp': '.*@.*|https://.*|spiffe://.*', 'certificate-oidc-issuer': 'https://x.example' }, 'accepts any identity'],
    ['a key plus identity', { key: 'x', 'certificate-identity': 'a' }, 'expected a PEM public key'],
    ['an unknown property', { 'certificate-identity': 'a', 'certificate-oidc-issuer': 'https://x.example', colour: 'red' }, 'colour'],
    ['an empty rule', {}, 'at least one property'],
    ['keyless with insecure-ignore-sct', { 'certificate-identity': 'a', 'certificate-oidc-issuer': 'https://x.example', 'insecure-ignore-sct': true }, 'not supported'],
    ['keyless with insecure-ignore-tlog', { 'certificate-identity': 'a', 'certificate-oidc-issuer': 'https://x.example', 'insecure-ignore-tlog': true }, 'always need the transparency log'],
  ])('rejects a rule with %s, naming its path', (_name, rule, message) => {
    const issues = parseError(JSON.stringify({ allow_with_verification: { 'docker.io': { 'team/app': rule } } }));
    expect(issues.join('\n')).toContain(message);
    expect(issues.join('\n')).toMatch(/allow_with_verification\.docker\.io\.team\/app/);
  });

  it('reports every problem of a file at once', () => {
    const issues = parseError(
      JSON.stringify({
        allow_with_verification: { 'docker.io': { a: { 'certificate-identity': 'x' }, b: { 'certificate-oidc-issuer': 'https://x.example' } } },
        allow_without_verification: { 'docker.io': ['Bad Pattern'] },
      }),
    );
    expect(issues).toHaveLength(3);
  });

  it('rejects a threshold no set of keys can meet, and duplicate registries', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(parseError(JSON.stringify({ allow_with_verification: { 'gcr.io': { x: { key: pem, threshold: 2 } } } })).join()).toContain('can never be met');
    expect(
      parseError(JSON.stringify({ allow_without_verification: { 'docker.io': ['a'], 'index.docker.io': ['b'] } })).join(),
    ).toContain('same registry');
  });

  it.each([['not yaml: [', 'not YAML'], ['{}', 'empty'], ['[]', 'expected object'], ['allow_everything: true', 'allow_everything']])(
    'rejects %j',
    (text, message) => {
      expect(parseError(text).join()).toContain(message);
    },
  );
});

function identityOf(m: ReturnType<typeof matchPolicy>): string | null {
  return m.kind === 'verify' && m.rule.kind === 'keyless' && 'exact' in m.rule.identity ? m.rule.identity.exact : null;
}

describe('matchPolicy', () => {
  const sample = parsePolicy(SAMPLE);

  it('prefers allow_with_verification when both sections match (Styra: docker.io/ubuntu/nginx)', () => {
    expect(matchPolicy(sample, 'docker.io', 'ubuntu/nginx')).toMatchObject({ kind: 'verify', name: 'allow_with_verification.docker.io.ubuntu/nginx' });
    expect(matchPolicy(sample, 'docker.io', 'ubuntu/other')).toMatchObject({ kind: 'allow', pattern: 'ubuntu/*' });
    expect(matchPolicy(sample, 'gcr.io', 'my-proj-1/base-alpine-image')).toMatchObject({ kind: 'allow' });
    expect(matchPolicy(sample, 'gcr.io', 'xyz/tool')).toMatchObject({ kind: 'verify', rule: { kind: 'key' } });
    expect(matchPolicy(sample, 'quay.io', 'ubuntu/nginx')).toEqual({ kind: 'none', mode: 'enforce' });
  });

  it('`*` does not cross a path separator; `**` does', () => {
    const p = parsePolicy(JSON.stringify({ allow_without_verification: { 'docker.io': ['a/*', 'b/**'] } }));
    expect(matchPolicy(p, 'docker.io', 'a/x').kind).toBe('allow');
    expect(matchPolicy(p, 'docker.io', 'a/x/y').kind).toBe('none');
    expect(matchPolicy(p, 'docker.io', 'b/x/y').kind).toBe('allow');
  });

  it("makes Styra's overlapping example deterministic: the exact path beats the glob, in any order", () => {
    const overlapping = parsePolicy(OVERLAPPING);
    const reversed = JSON.parse(OVERLAPPING) as { allow_with_verification: { 'docker.io': Record<string, unknown> } };
    reversed.allow_with_verification['docker.io'] = Object.fromEntries(Object.entries(reversed.allow_with_verification['docker.io']).reverse());
    for (const p of [overlapping, parsePolicy(JSON.stringify(reversed))]) {
      expect(identityOf(matchPolicy(p, 'docker.io', 'ubuntu/nginx'))).toBe('alice@example.com');
      expect(identityOf(matchPolicy(p, 'docker.io', 'ubuntu/redis'))).toBe('bob@example.com');
    }
  });

  it('among globs, the one with more literal characters wins', () => {
    const p = parsePolicy(JSON.stringify({ allow_without_verification: { 'docker.io': ['team-*/*', 'team-a/*'] } }));
    expect(matchPolicy(p, 'docker.io', 'team-a/app')).toMatchObject({ pattern: 'team-a/*' });
  });
});

describe('decide', () => {
  const sample = parsePolicy(SAMPLE);
  const GITHUB = 'https://github.com/login/oauth';

  it('allows an image signed by the required identity and names the signer', () => {
    const d = decide(sample, 'docker.io', 'ubuntu/nginx', facts([keyless('maintainer@example.com', GITHUB)]));
    expect(d).toMatchObject({ allowed: true, reason: 'verified', signers: [{ subject: 'maintainer@example.com', issuer: GITHUB }], policyVersion: sample.version });
  });

  it('denies a verified signature by someone else as identity_mismatch', () => {
    const d = decide(sample, 'docker.io', 'ubuntu/nginx', facts([keyless('mallory@example.com', GITHUB)]));
    expect(d).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
    expect(d.message).toContain('mallory@example.com');
  });

  it('matches regexps anywhere in the value, as cosign does: .*@example.com also accepts x@example.com.evil', () => {
    const issuer = 'https://github.com/login/oauth';
    expect(decide(sample, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.com', issuer)])).allowed).toBe(true);
    expect(decide(sample, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.com.evil', issuer)])).allowed).toBe(true);
    expect(decide(sample, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.com', 'https://github.com.evil/')])).allowed).toBe(true);
    expect(decide(sample, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.org', issuer)])).allowed).toBe(false);
    const strict = parsePolicy(SAMPLE.replace('".*@example.com"', '"^.*@example\\\\.com$"'));
    expect(decide(strict, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.com', issuer)])).allowed).toBe(true);
    expect(decide(strict, 'docker.io', 'openpolicyagent/opa', facts([keyless('x@example.com.evil', issuer)])).allowed).toBe(false);
  });

  it('never counts a signature that did not verify, whatever identity it claims', () => {
    const forged = keyless('maintainer@example.com', GITHUB, { outcome: 'digest_mismatch', reason: 'copied' });
    expect(decide(sample, 'docker.io', 'ubuntu/nginx', facts([forged]))).toMatchObject({ allowed: false, reason: 'digest_mismatch', message: 'copied' });
  });

  it('denies unsigned, unknown and uncovered images with their own reasons', () => {
    expect(decide(sample, 'docker.io', 'ubuntu/nginx', facts([])).reason).toBe('unsigned');
    expect(decide(sample, 'docker.io', 'ubuntu/nginx', null)).toMatchObject({
      allowed: false,
      reason: 'unknown',
      message: "Signet has not indexed this image yet: point the registry's notifications at Signet (POST /webhooks/<source>) and push it again, or index what the registry holds with: signet backfill docker.io/ubuntu/nginx",
    });
    expect(decide(sample, 'quay.io', 'x/y', null)).toMatchObject({ allowed: false, reason: 'not_covered_by_policy' });
    expect(decide(sample, 'docker.io', 'ubuntu/redis', null)).toMatchObject({ allowed: true, reason: 'allowed_without_verification' });
  });

  it('applies annotations, GitHub claims and k-of-n thresholds', () => {
    const p = parsePolicy(
      JSON.stringify({
        allow_with_verification: {
          'ghcr.io': {
            'acme/*': {
              'certificate-identity-regexp': 'https://github\\.com/acme/.*',
              'certificate-oidc-issuer': 'https://token.actions.githubusercontent.com',
              'certificate-github-workflow-repository': 'acme/service',
              'certificate-github-workflow-ref': 'refs/heads/main',
              annotations: { env: 'prod' },
              threshold: 2,
            },
          },
        },
      }),
    );
    const gh = 'https://token.actions.githubusercontent.com';
    const wf = (n: number, ref = 'refs/heads/main', env = 'prod') =>
      keyless(`https://github.com/acme/service/.github/workflows/w${n}.yml@${ref}`, gh, {
        claims: { sourceRepositoryUri: 'https://github.com/acme/service', sourceRepositoryRef: ref },
        annotations: { env },
      });
    expect(decide(p, 'ghcr.io', 'acme/service', facts([wf(1), wf(2)], 'ghcr.io', 'acme/service'))).toMatchObject({ allowed: true });
    expect(decide(p, 'ghcr.io', 'acme/service', facts([wf(1), wf(1)], 'ghcr.io', 'acme/service'))).toMatchObject({ reason: 'threshold_not_met' });
    expect(decide(p, 'ghcr.io', 'acme/service', facts([wf(1), wf(2, 'refs/heads/dev')], 'ghcr.io', 'acme/service'))).toMatchObject({ reason: 'threshold_not_met' });
    const staging = decide(p, 'ghcr.io', 'acme/service', facts([wf(1, undefined, 'staging'), wf(2, undefined, 'staging')], 'ghcr.io', 'acme/service'));
    expect(staging).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
    expect(staging.message).toContain('annotation env');
  });

  it('key rules need the named key and, unless insecure-ignore-tlog, a Rekor entry', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const strict = parsePolicy(JSON.stringify({ allow_with_verification: { 'gcr.io': { 'xyz/*': { key: pem } } } }));
    const lax = parsePolicy(JSON.stringify({ allow_with_verification: { 'gcr.io': { 'xyz/*': { key: pem, 'insecure-ignore-tlog': true } } } }));
    const rule = strict.withVerification.get('gcr.io')![0]!;
    const fp = rule.kind === 'key' ? rule.keys[0]!.fingerprint : '';
    const sig = (tlog: boolean, fingerprint = fp): SignatureFact => ({
      ...keyless('x', 'y'),
      identity: { kind: 'key', subject: fingerprint, issuer: null },
      keyFingerprint: fingerprint,
      tlog,
    });
    expect(decide(strict, 'gcr.io', 'xyz/a', facts([sig(true)], 'gcr.io', 'xyz/a')).allowed).toBe(true);
    expect(decide(strict, 'gcr.io', 'xyz/a', facts([sig(false)], 'gcr.io', 'xyz/a'))).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
    expect(decide(lax, 'gcr.io', 'xyz/a', facts([sig(false)], 'gcr.io', 'xyz/a')).allowed).toBe(true);
    expect(decide(lax, 'gcr.io', 'xyz/a', facts([sig(false, 'sha256:other')], 'gcr.io', 'xyz/a')).allowed).toBe(false);
  });
});

describe('schema/policy.schema.json', () => {
  const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../../schema/policy.schema.json', import.meta.url)), 'utf8')) as object;
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  // ajv-formats is CommonJS with a default export property.
  (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  const validate = ajv.compile(schema);
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it("accepts both of Styra's samples", () => {
    expect(validate(JSON.parse(SAMPLE))).toBe(true);
    expect(validate(JSON.parse(OVERLAPPING))).toBe(true);
  });

  it.each([
    ['an identity without an issuer', { 'certificate-identity': 'a@b.c' }],
    ['a key plus an identity', { key: pem, 'certificate-identity': 'a', 'certificate-oidc-issuer': 'https://x.example' }],
    ['both identity forms', { 'certificate-identity': 'a', 'certificate-identity-regexp': 'a', 'certificate-oidc-issuer': 'https://x.example' }],
    ['an unknown property', { key: pem, colour: 'red' }],
  ])('rejects a rule with %s, as parsePolicy does', (_name, rule) => {
    const policy = { allow_with_verification: { 'docker.io': { 'team/app': rule } } };
    expect(validate(policy)).toBe(false);
    expect(() => parsePolicy(JSON.stringify(policy))).toThrow(PolicyConfigError);
  });

  it('accepts the extensions', () => {
    const policy = {
      allow_with_verification: {
        'ghcr.io': {
          'acme/**': {
            'certificate-identity-regexp': 'https://github\\.com/acme/.*',
            'certificate-oidc-issuer': 'https://token.actions.githubusercontent.com',
            'certificate-github-workflow-repository': 'acme/service',
            annotations: { env: 'prod' },
            threshold: 2,
          },
        },
        'gcr.io': { 'xyz/*': { key: [pem, pem], 'insecure-ignore-tlog': true } },
      },
    };
    expect(validate(policy)).toBe(true);
    expect(() => parsePolicy(JSON.stringify(policy))).not.toThrow();
  });
});
