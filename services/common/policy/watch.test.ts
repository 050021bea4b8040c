import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { loadPolicy, type LoadedPolicy } from './load.ts';
import { PolicyWatcher } from './watch.ts';

const log = createLogger({ logLevel: 'silent' });
const allowAll = (host: string) => JSON.stringify({ allow_without_verification: { [host]: ['*'] } });

describe('PolicyWatcher', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'signet-policy-'));
    path = join(dir, 'policy.json');
    await writeFile(path, allowAll('a.example'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('hands a new version to every listener, and an unchanged file to none', async () => {
    const initial = await loadPolicy(path);
    const watcher = new PolicyWatcher(path, initial.policy, log);
    const seen: LoadedPolicy[][] = [[], []];
    watcher.onChange((next) => Promise.resolve(seen[0]!.push(next)));
    watcher.onChange((next) => Promise.resolve(seen[1]!.push(next)));

    expect(await watcher.reload()).toBe(initial.policy.version);
    expect(seen).toEqual([[], []]);

    await writeFile(path, allowAll('b.example'));
    const version = await watcher.reload();
    expect(version).not.toBe(initial.policy.version);
    expect(watcher.current.version).toBe(version);
    expect(seen.map((s) => s.map((l) => l.policy.version))).toEqual([[version], [version]]);
    expect(seen[0]![0]!.source).toBe(allowAll('b.example'));
  });

  it('keeps the policy in force when the file becomes invalid or unreadable', async () => {
    const initial = await loadPolicy(path);
    const watcher = new PolicyWatcher(path, initial.policy, log);
    let calls = 0;
    watcher.onChange(() => Promise.resolve(calls++));
    await writeFile(path, '{"allow_with_verification": {"x": {"*": {"certificate-identity-regexp": "("}}}}');
    expect(await watcher.reload()).toBe(initial.policy.version);
    await rm(path);
    expect(await watcher.reload()).toBe(initial.policy.version);
    expect(watcher.current).toBe(initial.policy);
    expect(calls).toBe(0);
  });

  it('reloads when the watched file changes', async () => {
    const initial = await loadPolicy(path);
    const watcher = new PolicyWatcher(path, initial.policy, log);
    const changed = new Promise<LoadedPolicy>((resolve) => watcher.onChange((next) => Promise.resolve(resolve(next))));
    const stop = watcher.watch(20);
    try {
      await writeFile(path, allowAll('c.example'));
      expect((await changed).source).toBe(allowAll('c.example'));
    } finally {
      stop();
    }
  });
});
