// Every `signet` command as an operator meets it: `--help` on stdout, `--json` as one JSON object,
// and each exit code the README's table promises, run as a separate process against a real
// registry, Postgres and Redis. One row per command: a new command adds a row here.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSignetCli, startSignetCli } from '../helpers/cli.ts';
import { createTestDb } from '../helpers/db.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { deleteQueueKeys, eventually, TEST_REDIS_URL } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };

/** What a case needs from the running stack. */
interface Ctx {
  readonly host: string;
  readonly tmp: string;
  /** The environment of an operator on the server's machine: same database, queue, roots, policy. */
  readonly env: Record<string, string>;
}

interface Case {
  readonly args: (c: Ctx) => string[];
  /** Settings changed from `Ctx.env` (an empty string removes one). */
  readonly env?: (c: Ctx) => Record<string, string>;
}

interface CliRow {
  /** As typed after `signet`. */
  readonly command: string;
  /** A run with --json that succeeds, and keys its one JSON object has. */
  readonly json: Case & { readonly keys: readonly string[] };
  /** Each exit code the README lists for the command, with a run that ends in it. */
  readonly exits: Readonly<Record<number, Case>>;
  /** Exit codes the README lists that another test file covers (too slow or disruptive here). */
  readonly elsewhere?: Readonly<Record<number, string>>;
}

/** A policy-controller sample from its docs (test/fixtures/policy-import, with its provenance). */
const IMPORT_SAMPLE = (name: string) => fileURLToPath(new URL(`../fixtures/policy-import/policy-controller/${name}`, import.meta.url));

const MISSING_DB = (c: Ctx) => ({ DATABASE_URL: c.env.DATABASE_URL!.replace(/\/[^/]+$/, '/firstrun_no_such_database') });

const ROWS: readonly CliRow[] = [
  {
    command: 'backfill',
    json: { args: (c) => ['backfill', c.host, '--json'], keys: ['registry', 'repository', 'jobs', 'seconds'] },
    exits: {
      1: { args: (c) => ['backfill', c.host], env: MISSING_DB },
      2: { args: () => ['backfill'] },
      3: { args: (c) => ['backfill', c.host], env: () => ({ SIGNET_CRAWL_MAX_PASS_ENTRIES: '1' }) },
      4: { args: () => ['backfill', 'registry.example.com'] },
    },
    elsewhere: { 130: 'below (Ctrl-C while waiting)', 143: 'test/security/endless-crawl.test.ts (SIGTERM inside a crawl)' },
  },
  {
    command: 'reverify',
    json: { args: () => ['reverify', '--dry-run', '--json'], keys: ['dryRun', 'checked', 'changed', 'transitions'] },
    exits: {
      1: { args: () => ['reverify'], env: MISSING_DB },
      2: { args: () => ['reverify', 'extra'] },
      // Without the test root, only the public-good and GitHub roots are trusted: alice's signature would fail.
      3: { args: () => ['reverify', '--dry-run'], env: () => ({ SIGNET_TRUSTED_ROOT: '' }) },
    },
  },
  {
    command: 'verify',
    json: { args: (c) => ['verify', `${c.host}/cli/app:v1`, '--json'], keys: ['image', 'verified', 'signatures'] },
    exits: {
      1: { args: (c) => ['verify', `${c.host}/cli/unsigned:v1`] },
      2: { args: () => ['verify'] },
      3: { args: (c) => ['verify', `${c.host}/cli/none:v1`] },
      4: { args: () => ['verify', '127.0.0.1:9/cli/app:v1'], env: (c) => ({ SIGNET_INSECURE_REGISTRIES: `${c.host},127.0.0.1:9` }) },
    },
  },
  {
    command: 'who-owns',
    json: { args: (c) => ['who-owns', `${c.host}/cli/app:v1`, '--json'], keys: ['reference', 'status', 'decision', 'owners', 'signatures'] },
    exits: { 2: { args: () => ['who-owns', 'not a reference!'] }, 3: { args: (c) => ['who-owns', `${c.host}/cli/none:v1`] } },
  },
  {
    command: 'signed-by',
    json: { args: () => ['signed-by', ALICE.email, '--json'], keys: ['identities'] },
    exits: { 2: { args: () => ['signed-by'] }, 3: { args: () => ['signed-by', 'mallory@example.com'] } },
  },
  {
    command: 'policy check',
    json: { args: (c) => ['policy', 'check', join(c.tmp, 'policy.yaml'), '--json'], keys: ['valid', 'version'] },
    exits: { 1: { args: (c) => ['policy', 'check', join(c.tmp, 'bad.yaml')] }, 2: { args: (c) => ['policy', 'check', join(c.tmp, 'missing.yaml')] } },
  },
  {
    command: 'policy dry-run',
    json: { args: (c) => ['policy', 'dry-run', join(c.tmp, 'policy.yaml'), '--json'], keys: ['images', 'allowToDeny', 'denyToAllow'] },
    exits: {
      1: { args: (c) => ['policy', 'dry-run', join(c.tmp, 'bad.yaml')] },
      2: { args: () => ['policy', 'dry-run'] },
      3: { args: (c) => ['policy', 'dry-run', join(c.tmp, 'stricter.yaml')] },
    },
  },
  {
    command: 'explain',
    json: { args: (c) => ['explain', `${c.host}/cli/app:v1`, '--json'], keys: ['image', 'scope', 'rule', 'mode', 'admission', 'evidence'] },
    exits: { 2: { args: () => ['explain'] }, 3: { args: (c) => ['explain', `${c.host}/cli/unsigned:v1`] } },
  },
  {
    command: 'audit',
    json: { args: (c) => ['audit', join(c.tmp, 'pods-ok.json'), '--json'], keys: ['policyVersion', 'workloads', 'denied', 'findings'] },
    exits: {
      1: { args: (c) => ['audit', join(c.tmp, 'pods-ok.json')], env: MISSING_DB },
      2: { args: () => ['audit'] },
      3: { args: (c) => ['audit', join(c.tmp, 'pods-denied.json')] },
    },
  },
  {
    command: 'policy import',
    json: { args: () => ['policy', 'import', IMPORT_SAMPLE('signed-by-github-actions.yaml'), '--registry', 'ghcr.io', '--json'], keys: ['policy', 'unexpressed'] },
    exits: {
      1: { args: (c) => ['policy', 'import', join(c.tmp, 'policy.yaml')] },
      2: { args: (c) => ['policy', 'import', join(c.tmp, 'missing.yaml')] },
      3: { args: () => ['policy', 'import', IMPORT_SAMPLE('allow-only-pods.yaml')] },
    },
  },
  { command: 'version', json: { args: () => ['version', '--json'], keys: ['version', 'node', 'platform'] }, exits: {} },
];

let stack: TestStack;
let ctx: Ctx;

beforeAll(async () => {
  stack = await startTestStack({ name: 'cli', policy: (host) => policyAllowing(host, ALICE) });
  const { registry, sigstore, signet, tmp, host } = stack;
  const signed = await pushRandomImage(registry.url, 'cli/app', 'v1');
  await pushCosignSignatures(registry.url, 'cli/app', signed.digest, [await sigstore.signKeyless(simpleSigningPayload(`${host}/cli/app`, signed.digest), ALICE)]);
  await pushRandomImage(registry.url, 'cli/unsigned', 'v1');
  await eventually(async () => {
    const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`${host}/cli/app:v1`)}` });
    return res.json<{ allowed: boolean }>().allowed ? true : undefined;
  }, 'cli/app:v1 allowed');
  const pods = (image: string) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { containers: [{ name: 'c', image }] } }] });
  await writeFile(join(tmp, 'pods-ok.json'), pods(`${host}/cli/app:v1`));
  await writeFile(join(tmp, 'pods-denied.json'), pods(`${host}/cli/unsigned:v1`));
  await writeFile(join(tmp, 'bad.yaml'), 'allow_with_verification:\n  r.example.com:\n    a/*:\n      certificate-identiy: a@example.com\n');
  await writeFile(join(tmp, 'stricter.yaml'), policyAllowing(host, { email: 'bob@example.com', issuer: ALICE.issuer }));
  ctx = {
    host,
    tmp,
    env: {
      DATABASE_URL: stack.db.url,
      REDIS_URL: TEST_REDIS_URL,
      SIGNET_QUEUE_PREFIX: signet.config.redis.queuePrefix,
      SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
      SIGNET_POLICY: join(tmp, 'policy.yaml'),
      SIGNET_INSECURE_REGISTRIES: host,
    },
  };
});

afterAll(async () => {
  await stack?.stop();
});

function run(c: Case) {
  const env = { ...ctx.env, ...c.env?.(ctx) };
  return runSignetCli(c.args(ctx), Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
}

describe.each(ROWS)('signet $command', (row) => {
  it('--help: its usage on stdout, naming --json, exit 0', async () => {
    const r = await runSignetCli([...row.command.split(' ').slice(0, 1), '--help'], {});
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^usage: signet ${row.command.split(' ')[0]!}`));
    expect(r.stdout).toContain(`signet ${row.command}`);
    expect(r.stdout).toContain('--json');
  });

  it('--json: one JSON object on stdout', async () => {
    const r = await run(row.json);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const value = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(expect.arrayContaining([...row.json.keys]));
  });

  it.each(Object.entries(row.exits))('exits %s', async (code, c) => {
    const r = await run(c);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(Number(code));
  });
});

describe('signet backfill --wait, stopped', () => {
  it('exits 130 on Ctrl-C (SIGINT) while it waits for jobs no worker takes', async () => {
    // An empty ledger (everything is queued) and a queue no worker consumes: --wait waits.
    const empty = await createTestDb();
    const prefix = `signet-test-cli-idle-${Date.now()}`;
    try {
      const cli = startSignetCli(['backfill', ctx.host, '--wait'], { ...ctx.env, DATABASE_URL: empty.url, SIGNET_QUEUE_PREFIX: prefix });
      await eventually(() => Promise.resolve(/queued/.test(cli.output.stdout + cli.output.stderr) ? true : undefined), 'backfill waiting');
      cli.child.kill('SIGINT');
      expect(await cli.exited).toEqual({ code: 130, signal: null });
    } finally {
      await empty.drop();
      await deleteQueueKeys(TEST_REDIS_URL, prefix);
    }
  });
});

describe("the README's exit-code table", () => {
  it('lists, for each command, exactly the codes tested here or named elsewhere', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    for (const row of ROWS) {
      const line = readme.split('\n').find((l) => l.startsWith(`| \`${row.command}`));
      expect(line, `README has no exit-code row for ${row.command}`).toBeDefined();
      const listed = [...line!.split('|').at(-2)!.matchAll(/\b(\d+)\b/g)].map((m) => Number(m[1]));
      const tested = [0, ...Object.keys(row.exits).map(Number), ...Object.keys(row.elsewhere ?? {}).map(Number)];
      expect(new Set(listed), row.command).toEqual(new Set(tested));
    }
  });
});
