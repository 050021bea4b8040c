// bin/signet.js and bin/signet-server.js (the bin, `npm start` and the Docker image's command)
// check the Node version before the TypeScript sources load: an old Node is told what it needs.
// The old Node is simulated: process.versions.node is replaced before the launcher runs.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = (f: string) => fileURLToPath(new URL(`../bin/${f}`, import.meta.url));
const AS_NODE = (version: string) => `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"})`;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { PATH: process.env.PATH } }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr }));
  });
}

describe('the launchers', () => {
  it.each([['signet.js'], ['signet-server.js']])('%s on Node 20 says which Node Signet needs, and exits 1', async (bin) => {
    const r = await run(['--import', AS_NODE('20.11.0'), BIN(bin), 'version']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^signet: Signet needs Node 24\.15 or later \(or 22\.22\.2 or a later 22\.x\).* This is Node 20\.11\.0\. /);
    expect(r.stderr).toContain('install Node 24');
  });

  it.each([['22.22.1', false], ['22.22.2', true], ['23.11.0', false], ['24.14.9', false], ['24.15.0', true], ['25.0.0', true]])('Node %s: runs = %s', async (version, runs) => {
    const r = await run(['--import', AS_NODE(version), BIN('signet.js'), 'version']);
    expect(r.code).toBe(runs ? 0 : 1);
  });

  it('on this Node, runs the CLI', async () => {
    const r = await run([BIN('signet.js'), 'version']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^signet \d+\.\d+\.\d+ \(node v/);
  });
});
