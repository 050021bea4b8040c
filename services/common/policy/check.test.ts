import { describe, expect, it } from 'vitest';
import { checkPolicyText } from './check.ts';

describe('checkPolicyText', () => {
  it('a valid policy has a version', () => {
    const r = checkPolicyText('allow_with_verification:\n  reg.example.com:\n    team/*:\n      certificate-identity: a@example.com\n      certificate-oidc-issuer: https://accounts.google.com\n', 'p.yaml');
    expect(r).toEqual({ version: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), warnings: [] });
  });

  it('points at the line and column of each problem, with keys that contain dots', () => {
    const text = [
      'allow_with_verification:',
      '  registry.example.com:',
      '    team-a/*:',
      '      certificate-identity-regexp: "(unclosed"',
      '      certificate-oidc-issuer: https://accounts.google.com',
      '    "Team-B/[":',
      '      certificate-identity: b@example.com',
      '      certificate-oidc-issuer: https://accounts.google.com',
      '',
    ].join('\n');
    const r = checkPolicyText(text, 'p.yaml');
    expect('problems' in r && r.problems).toEqual([
      { line: 4, column: 36, path: 'allow_with_verification.registry.example.com.team-a/*.certificate-identity-regexp', message: expect.stringMatching(/not an RE2 regular expression/) },
      { line: 6, column: 5, path: 'allow_with_verification.registry.example.com.Team-B/[', message: expect.stringMatching(/not an image-path glob/) },
    ]);
  });

  it('schema errors and YAML syntax errors have positions too', () => {
    const schema = checkPolicyText('allow_with_verification:\n  r.example.com:\n    a/*:\n      key: nope\n', 'p.yaml');
    expect('problems' in schema && schema.problems[0]).toMatchObject({ line: 4, column: 12, message: 'expected a PEM public key' });
    const syntax = checkPolicyText('allow_with_verification:\n  a: [\n', 'p.yaml');
    expect('problems' in syntax && syntax.problems[0]).toMatchObject({ line: 3, path: '(syntax)' });
  });

  it('a rule that would accept any identity is refused where it is', () => {
    const r = checkPolicyText('allow_with_verification:\n  r.example.com:\n    a/*:\n      certificate-identity-regexp: ".*"\n      certificate-oidc-issuer: https://accounts.google.com\n', 'p.yaml');
    expect('problems' in r && r.problems.map((p) => p.line)).toEqual([4]);
  });
});

describe('checkPolicyText, all at once', () => {
  it('reports schema and rule errors together, with "did you mean" for misspelt keys', () => {
    const text = [
      'allow_with_verification:',
      '  r.example.com:',
      '    team-a/*:',
      '      certificate-identiy: a@example.com',
      '      certificate-oidc-issuer: https://accounts.google.com',
      '    team-b/*:',
      '      certificate-identity-regexp: "(unclosed"',
      '      certificate-oidc-issuer: https://accounts.google.com',
      'allow_without_verificaton:',
      '  docker.io: [library/*]',
      '',
    ].join('\n');
    const r = checkPolicyText(text, 'p.yaml');
    expect('problems' in r && r.problems).toEqual([
      { line: 9, column: 1, path: 'allow_without_verificaton', message: 'unknown key; did you mean "allow_without_verification"?' },
      { line: 4, column: 28, path: 'allow_with_verification.r.example.com.team-a/*.certificate-identiy', message: 'unknown key; did you mean "certificate-identity"?' },
      { line: 7, column: 36, path: 'allow_with_verification.r.example.com.team-b/*.certificate-identity-regexp', message: expect.stringMatching(/not an RE2 regular expression/) },
    ]);
  });

  it('offers no guess for a key like none it knows', () => {
    const r = checkPolicyText('allow_with_verification:\n  r.example.com:\n    a/*:\n      colour: blue\n', 'p.yaml');
    expect('problems' in r && r.problems.map((p) => p.message)).toEqual(['unknown key']);
  });
});
