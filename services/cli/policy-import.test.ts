// `signet policy import` as users run it: a peer's policy file in, a Signet policy file out, what
// could not be expressed on stderr, and exit codes that say which.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSignetCli } from '../../test/helpers/cli.ts';
import { checkPolicyText } from '../common/policy/check.ts';

const fixture = (path: string) => fileURLToPath(new URL(`../../test/fixtures/policy-import/${path}`, import.meta.url));
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'signet-import-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('signet policy import', () => {
  it('writes the Signet policy, lists what it could not express, and exits 3', async () => {
    const out = join(tmp, 'imported.yaml');
    const r = await runSignetCli(['policy', 'import', fixture('kyverno/03-attest-code-review.yaml'), '--output', out], {});
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/^not expressed: ClusterPolicy attest-code-review: spec\.rules\.0\.verifyImages\.0\.imageReferences: /m);
    const written = await readFile(out, 'utf8');
    expect(written).toMatch(/^# Imported by `signet policy import` from .*03-attest-code-review\.yaml\.\n# Not expressed \(review before use\):\n# {3}- ClusterPolicy attest-code-review/);
    // The file it writes passes `signet policy check`.
    expect(checkPolicyText(written, out)).toEqual({ version: expect.stringMatching(/^sha256:/), warnings: [] });
  });

  it('exits 0 when everything is expressed, printing the policy; 1 when nothing can be; 2 when the file is missing', async () => {
    const all = await runSignetCli(['policy', 'import', fixture('policy-controller/signed-by-github-actions.yaml'), '--registry', 'ghcr.io'], {});
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain('ghcr.io:\n    "**":\n      certificate-identity: https://github.com/sigstore/policy-controller/');
    const kms = await runSignetCli(['policy', 'import', fixture('policy-controller/signed-by-aws-kms-key.yaml'), '--registry', 'ghcr.io'], {});
    expect(kms.code).toBe(1);
    expect(kms.stderr).toContain('nothing Signet can express');
    expect((await runSignetCli(['policy', 'import', join(tmp, 'missing.yaml')], {})).code).toBe(2);
  });

  it('--json prints the policy and the list as one object', async () => {
    const r = await runSignetCli(['policy', 'import', fixture('kyverno/02-exclude-refs.yaml'), '--json'], {});
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ policy: { allow_without_verification: { 'ghcr.io': ['trusted/**'] } }, unexpressed: [expect.stringContaining('skipImageReferences')] });
  });
});
