import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSignetCli } from '../helpers/cli.ts';

/** The policy of the README's `signet policy check` example: two errors and a look-alike pattern. */
const README_POLICY = `allow_with_verification:
  registry.example.com:
    team-a/*:
      certificate-identity-regexp: "(unclosed"
      certificate-oidc-issuer: https://accounts.google.com
    Team-B/[:
      certificate-identity: b@example.com
      certificate-oidc-issuer: https://accounts.google.com
  ghcr.io:
    acme/*:
      certificate-identity-regexp: alice@example\\.com
      certificate-oidc-issuer: https://accounts.google.com
`;

describe('signet policy check', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'signet-policy-check-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the README example: errors, then look-alike warnings with a strict rewrite', async () => {
    await writeFile(join(dir, 'policy.yaml'), README_POLICY);
    const r = await runSignetCli(['policy', 'check', 'policy.yaml'], {}, dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        'policy.yaml:4:36: allow_with_verification.registry.example.com.team-a/*.certificate-identity-regexp: not an RE2 regular expression: error parsing regexp: missing closing ): `(unclosed`',
        'policy.yaml:6:5: allow_with_verification.registry.example.com.Team-B/[: "Team-B/[" is not an image-path glob (lower-case path, * ? ** [..] {..})',
        'policy.yaml:11:36: allow_with_verification.ghcr.io.acme/*.certificate-identity-regexp: warning: "alice@example\\\\.com" accepts look-alikes: no ^: it matches anywhere, so it also accepts "https://evil.example/?alice@example.com"; no $: it matches anywhere, so it also accepts "alice@example.com.evil.example"; strict: "^alice@example\\\\.com$"',
        '2 problems, 1 warning',
        '',
      ].join('\n'),
    );
  });

  it('warnings alone leave the policy valid (exit 0), in text and JSON', async () => {
    const file = join(dir, 'warn.yaml');
    await writeFile(file, README_POLICY.split('\n').filter((_, i) => i === 0 || i >= 8).join('\n'));
    const text = await runSignetCli(['policy', 'check', file], {});
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/:4:36: allow_with_verification\.ghcr\.io\.acme\/\*\.certificate-identity-regexp: warning: .*\n.*: valid \(policy version sha256:[0-9a-f]{64}\), 1 warning\n$/);
    const json = await runSignetCli(['policy', 'check', file, '--json'], {});
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, warnings: [{ line: 4, column: 36, message: expect.stringContaining('strict: "^alice@example\\\\.com$"') }] });
  });
});
