import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFixture } from '../../../test/helpers/fixtures.ts';
import type { ManifestFacts } from '../domain/decision.ts';
import { checkPolicyText } from './check.ts';
import { decide } from './evaluate.ts';
import { loadPolicy } from './load.ts';
import { compileRe2, lintRegexp, regexpWarnings } from './matcher.ts';
import { parsePolicy, PolicyConfigError } from './policy.ts';

interface Case {
  readonly from: string;
  readonly field: 'identity' | 'issuer';
  readonly pattern: string;
  readonly value: string;
  readonly peer: 'match' | 'no-match' | 'malformed';
}

/** The patterns of cosign's and policy-controller's tests and Styra's sample (test/fixtures/identity-regexps). */
const CASES = JSON.parse(readFixture('identity-regexps/cases.json').toString('utf8')) as Record<string, Case[]>;
const rows = Object.entries(CASES).flatMap(([group, cases]) => cases.map((c) => ({ group, ...c })));

const OTHER_ISSUER = 'https://issuer.example';
const OTHER_IDENTITY = 'someone@example.org';

/** A one-rule policy with the case's pattern in its field and an exact matcher in the other. */
function policyFor(c: Case): string {
  const rule =
    c.field === 'identity'
      ? { 'certificate-identity-regexp': c.pattern, 'certificate-oidc-issuer': OTHER_ISSUER }
      : { 'certificate-identity': OTHER_IDENTITY, 'certificate-oidc-issuer-regexp': c.pattern };
  return JSON.stringify({ allow_with_verification: { 'reg.example': { 'app/*': rule } } });
}

function signedBy(c: Case): ManifestFacts {
  const subject = c.field === 'identity' ? c.value : OTHER_IDENTITY;
  const issuer = c.field === 'issuer' ? c.value : OTHER_ISSUER;
  return {
    registry: 'reg.example',
    repository: 'app/x',
    status: 'verified',
    signatures: [
      { outcome: 'verified', reason: null, identity: { kind: 'email', subject, issuer }, claims: {}, keyFingerprint: null, tlog: true, annotations: null },
    ],
  };
}

describe('-regexp properties behave exactly as in cosign, sigstore-go and policy-controller', () => {
  it.each(rows)('$group $from: $field $pattern vs $value → $peer', (c) => {
    if (c.peer === 'malformed') {
      expect(() => parsePolicy(policyFor(c))).toThrow(PolicyConfigError);
      expect(() => parsePolicy(policyFor(c))).toThrow(/not an RE2 regular expression/);
      return;
    }
    const d = decide(parsePolicy(policyFor(c)), 'reg.example', 'app/x', signedBy(c));
    expect(d.allowed).toBe(c.peer === 'match');
    expect(d.reason).toBe(c.peer === 'match' ? 'verified' : 'identity_mismatch');
  });

  it('the table covers every source and both outcomes', () => {
    expect(Object.keys(CASES).sort()).toEqual(['cosign', 'look-alikes', 'policy-controller', 're2-syntax', 'styra']);
    expect(new Set(rows.map((r) => r.peer))).toEqual(new Set(['match', 'no-match', 'malformed']));
  });

  it('RE2, not JS RegExp: syntax only one of them accepts, and no catastrophic backtracking', () => {
    expect(compileRe2('(?i)^a$').test('A')).toBe(true);
    const jsInlineFlags = '(?i)^a$';
    expect(() => new RegExp(jsInlineFlags)).toThrow();
    expect(compileRe2('^a\\z').test('a')).toBe(true);
    expect(new RegExp('^a\\z').test('a')).toBe(false); // JS reads \z as a literal z
    expect(() => compileRe2('(?<!x)a')).toThrow();
    expect(new RegExp('(?<!x)a').test('a')).toBe(true);
    expect(compileRe2('^(a+)+$').test(`${'a'.repeat(5000)}b`)).toBe(false);
  });
});

describe('lintRegexp: patterns that accept look-alikes', () => {
  const cases: [pattern: string, intended: string, lookAlike: string, says: RegExp][] = [
    ['alice@example\\.com', 'alice@example.com', 'alice@example.com.evil', /no \$.*"alice@example\.com\.evil\.example"/],
    ['alice@example\\.com', 'alice@example.com', 'mallory+alice@example.com', /no \^/],
    ['.*@example.com', 'x@example.com', 'x@example-com.evil', /unescaped \. .*"e\.c"/],
    ['https://github.com.*', 'https://github.com/login/oauth', 'https://github-com.evil/', /unescaped \./],
    ['^https://github.com/acme/', 'https://github.com/acme/app/.github/workflows/r.yml@refs/tags/v1', 'https://githubXcom/acme/x', /unescaped \./],
    ['^https://github\\.com/acme.*$', 'https://github.com/acme/app', 'https://github.com/acme-evil/app', /run on, so it also accepts "https:\/\/github\.com\/acme-evil"/],
    ['^alice@example\\.com$|bob@example\\.com', 'bob@example.com', 'bob@example.com.evil', /alternative 2: no \^/],
  ];

  it.each(cases)('%s', (pattern, intended, lookAlike, says) => {
    const re = compileRe2(pattern);
    expect(re.test(intended)).toBe(true);
    expect(re.test(lookAlike)).toBe(true);
    const lint = lintRegexp(pattern);
    expect(lint.problems.join('\n')).toMatch(says);
    if (lint.suggestion !== null) {
      const strict = compileRe2(lint.suggestion);
      expect(strict.test(intended)).toBe(true);
      expect(strict.test(lookAlike)).toBe(lookAlike === 'https://github.com/acme-evil/app');
    }
  });

  it('suggests the anchored, escaped rewrite', () => {
    expect(lintRegexp('alice@example\\.com').suggestion).toBe('^alice@example\\.com$');
    expect(lintRegexp('.*@example.com').suggestion).toBe('^.*@example\\.com$');
    expect(lintRegexp('^https://github.com/acme/').suggestion).toBe('^https://github\\.com/acme/.*$');
    expect(lintRegexp('a@x\\.com|b@x\\.com').suggestion).toBe('^(?:a@x\\.com|b@x\\.com)$');
    expect(lintRegexp('(?i)alice@example\\.com').suggestion).toBe('^(?i)alice@example\\.com$');
  });

  it('leaves strict patterns and broken ones alone', () => {
    for (const strict of ['^alice@example\\.com$', '^https://github\\.com/acme/.*$', '^https://github\\.com/acme/', '\\Aalice@example\\.com\\z', '^(?:a|b)@example\\.com$', '^\\Qa.b@example.com\\E$', '^[a-z.]+@example\\.com$']) {
      expect(lintRegexp(strict), strict).toEqual({ problems: [], suggestion: null });
    }
    expect(lintRegexp('(')).toEqual({ problems: [], suggestion: null });
  });

  it('finds every -regexp property of a document, nested or in lists', () => {
    const w = regexpWarnings({ a: { 'b.c': { 'certificate-identity-regexp': 'x@y\\.z', other: 'x' } }, list: [{ 'certificate-oidc-issuer-regexp': '.*' }] });
    expect(w.filter((x) => x.startsWith('a.b.c.certificate-identity-regexp: '))).toEqual([expect.stringMatching(/no \^.*; no \$.*; strict: "\^x@y\\\\\.z\$"$/)]);
    expect(w).toContainEqual(expect.stringMatching(/^list\.0\.certificate-oidc-issuer-regexp: ".\*" accepts any OIDC issuer/));
  });
});

describe('signet policy check warnings', () => {
  it("warns where Styra's sample patterns are, and the policy stays valid", () => {
    const r = checkPolicyText(readFixture('styra/verification-config-sample.json').toString('utf8'), 'sample.json');
    expect('version' in r).toBe(true);
    expect(r.warnings.map((w) => [w.line, w.column, w.path])).toEqual([
      [9, 32, 'allow_with_verification.docker.io.openpolicyagent/opa.certificate-identity-regexp'],
      [10, 35, 'allow_with_verification.docker.io.openpolicyagent/opa.certificate-oidc-issuer-regexp'],
    ]);
    expect(r.warnings[0]!.message).toMatch(/strict: "\^\.\*@example\\\\\.com\$"/);
  });

  it("the issue's Styra rule passes check with a warning, and allows the images it was written for", () => {
    const text = 'allow_with_verification:\n  ghcr.io:\n    acme/*:\n      certificate-identity-regexp: "^https://github.com/acme/"\n      certificate-oidc-issuer: https://token.actions.githubusercontent.com\n';
    const r = checkPolicyText(text, 'p.yaml');
    expect(r).toMatchObject({ version: expect.any(String), warnings: [{ line: 4, column: 36, message: expect.stringMatching(/unescaped \..*strict: "\^https:\/\/github\\\\\.com\/acme\/\.\*\$"/) }] });
    const facts: ManifestFacts = {
      registry: 'ghcr.io',
      repository: 'acme/app',
      status: 'verified',
      signatures: [
        {
          outcome: 'verified',
          reason: null,
          identity: { kind: 'uri', subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1', issuer: 'https://token.actions.githubusercontent.com' },
          claims: {},
          keyFingerprint: null,
          tlog: true,
          annotations: null,
        },
      ],
    };
    expect(decide(parsePolicy(text), 'ghcr.io', 'acme/app', facts)).toMatchObject({ allowed: true, reason: 'verified' });
  });
});

describe('loadPolicy', () => {
  it('hands back the warnings in file:line:column form, for the start-up log', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'signet-matcher-')), 'policy.yaml');
    writeFileSync(file, 'allow_with_verification:\n  r.example:\n    a/*:\n      certificate-identity: a@example.com\n      certificate-oidc-issuer-regexp: https://accounts.google.com\n');
    const loaded = await loadPolicy(file);
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings![0]!.startsWith(`${file}:5:39: allow_with_verification.r.example.a/*.certificate-oidc-issuer-regexp: warning: `)).toBe(true);
    expect(loaded.warnings![0]).toContain('strict: "^https://accounts\\\\.google\\\\.com$"');
  });
});
