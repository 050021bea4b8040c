// The dispatcher as users meet it: help where they asked for it, a version, exit codes.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runSignetCli } from '../../test/helpers/cli.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('signet', () => {
  it.each([['--help'], ['-h'], ['help']])('%s prints the commands on stdout and exits 0', async (flag) => {
    const r = await runSignetCli([flag], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: signet <command>/);
    expect(r.stdout).toContain('who-owns');
    expect(r.stderr).toBe('');
  });

  it.each([['version'], ['--version']])('%s prints the version on stdout', async (arg) => {
    const r = await runSignetCli([arg], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`signet ${VERSION} (node ${process.version}, ${process.platform}/${process.arch})\n`);
  });

  it('an unknown command exits 2 with the commands on stderr', async () => {
    const r = await runSignetCli(['who-own'], {});
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('unknown command "who-own"');
    expect(r.stderr).toContain('usage: signet <command>');
  });

  it("a command's --help goes to stdout", async () => {
    const r = await runSignetCli(['verify', '--help'], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: signet verify/);
  });
});
