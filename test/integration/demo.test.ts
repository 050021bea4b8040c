// `npm run demo` as a new user runs it: the script itself, in its own process, until it says it
// keeps running; then Ctrl-C (SIGINT), after which nothing it made is left.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PG_SERVER, TEST_DB_PREFIX } from '../helpers/db.ts';
import { TEST_REDIS_URL } from '../helpers/signet.ts';

const DEMO = fileURLToPath(new URL('../../scripts/demo.ts', import.meta.url));
const DATABASE = `${TEST_DB_PREFIX}demo`;

async function databaseExists(): Promise<boolean> {
  const c = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE])).rowCount === 1;
  } finally {
    await c.end();
  }
}

/** Runs the demo until it prints `until`, then sends SIGINT; resolves with all it printed and how it ended. */
function runDemo(until: string): Promise<{ stdout: string; stderr: string; code: number | null; whileRunning: { database: boolean; ui: number; registry: number } }> {
  const child = spawn(process.execPath, [DEMO], {
    env: { PATH: process.env.PATH, SIGNET_DEMO_PORT: '0', SIGNET_DEMO_DATABASE: DATABASE, SIGNET_DEMO_PG: PG_SERVER, REDIS_URL: TEST_REDIS_URL },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let whileRunning: { database: boolean; ui: number; registry: number } | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (whileRunning === undefined && stdout.includes(until)) {
        whileRunning = { database: false, ui: 0, registry: 0 };
        const ui = /Open the ownership page: +(\S+)/.exec(stdout)![1]!;
        const registry = /registry (\S+) \(it notifies/.exec(stdout)![1]!;
        void (async () => {
          whileRunning = { database: await databaseExists(), ui: (await fetch(ui)).status, registry: (await fetch(`http://${registry}/v2/`)).status };
          child.kill('SIGINT');
        })().catch(reject);
      }
    });
    child.once('close', (code) => resolve({ stdout, stderr, code, whileRunning: whileRunning! }));
  });
}

describe('npm run demo', () => {
  it('prints each image with its decision and GraphQL answer, the URLs and what to try, runs until Ctrl-C, then removes what it made', async () => {
    const run = await runDemo('keeps running until Ctrl-C');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    const line = (ref: string) => new RegExp(`/demo/${ref} — .*\\n  decision: (ALLOW|DENY) (\\w+): .*\\n  graphql:  (.*)\\n`).exec(out);
    const expected: [string, string, string][] = [
      ['keyless:v1', 'ALLOW', 'verified'],
      ['release:v1.0.0', 'ALLOW', 'verified'],
      ['keyed:v1', 'ALLOW', 'verified'],
      ['attested:v1', 'ALLOW', 'verified'],
      ['unsigned:v1', 'DENY', 'unsigned'],
      ['rogue:v1', 'DENY', 'untrusted_root'],
      ['keyless:v2', 'DENY', 'identity_mismatch'],
    ];
    for (const [ref, verdict, reason] of expected) {
      const m = line(ref);
      expect(m, ref).not.toBeNull();
      expect([m![1], m![2]], ref).toEqual([verdict, reason]);
      const graphql = JSON.parse(m![3]!) as { image: { decision: { allowed: boolean; reason: string } } };
      expect(graphql.image.decision, ref).toEqual({ allowed: verdict === 'ALLOW', reason: reason.toUpperCase() });
    }
    expect(JSON.parse(line('attested:v1')![3]!)).toMatchObject({ image: { attestations: [{ predicateType: 'https://slsa.dev/provenance/v1', status: 'VERIFIED' }] } });
    expect(out).toMatch(/demo\/rogue:v1 — .*\n {2}decision: DENY untrusted_root: the certificate was issued by ".*", which chains to none of the trusted roots \(SIGNET_TRUSTED_ROOT: .*trusted_root\.json\)/);
    expect(out).toContain('demo/keyless: bob@example.com signed for the first time (owners before: alice@example.com)');
    expect(out).toMatch(/Open the ownership page: +http:\/\/127\.0\.0\.1:\d+\/ui\n/);
    expect(out).toMatch(/Open GraphiQL: +http:\/\/127\.0\.0\.1:\d+\/graphql\n/);
    const tryNext = out.slice(out.indexOf('Try next:')).split('\n').slice(1, 4);
    expect(tryNext[0]).toMatch(/npm run signet -- who-owns \S+\/demo\/keyless:v1$/);
    expect(tryNext[1]).toMatch(/^ {2}curl -s '.*\/v1\/decisions\?image=.*\/demo\/rogue:v1'$/);
    expect(tryNext[2]).toContain('ownershipChanges');

    expect(run.whileRunning).toEqual({ database: true, ui: 200, registry: 200 });
    expect(await databaseExists()).toBe(false);
  });
});
