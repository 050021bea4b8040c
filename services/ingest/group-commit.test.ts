import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.ts';

/** A write whose calls wait until the test settles them. */
function controlledWrite() {
  const calls: { items: readonly string[]; resolve: () => void; reject: (err: Error) => void }[] = [];
  const write = (items: readonly string[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, resolve: () => resolve(items.map((i) => `ok:${i}`)), reject });
    });
  return { calls, write };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('GroupCommit', () => {
  it('writes a lone item at once, alone', async () => {
    const { calls, write } = controlledWrite();
    const group = new GroupCommit(write);
    const a = group.submit('a');
    expect(calls.map((c) => c.items)).toEqual([['a']]);
    calls[0]!.resolve();
    expect(await a).toBe('ok:a');
  });

  it('groups what arrives while a write is in flight into the next write, and settles nobody before their write', async () => {
    const { calls, write } = controlledWrite();
    const group = new GroupCommit(write);
    const settled: string[] = [];
    const submit = (item: string) => group.submit(item).then((r) => settled.push(r));
    const all = [submit('a'), submit('b'), submit('c'), submit('d')];
    expect(calls.map((c) => c.items)).toEqual([['a']]);
    expect(group.waiting).toBe(3);
    await tick();
    expect(settled).toEqual([]);
    calls[0]!.resolve();
    await tick();
    expect(settled).toEqual(['ok:a']);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c', 'd']]);
    await tick();
    // b, c and d wait for the write that holds them.
    expect(settled).toEqual(['ok:a']);
    calls[1]!.resolve();
    await Promise.all(all);
    expect(settled).toEqual(['ok:a', 'ok:b', 'ok:c', 'ok:d']);
  });

  it('keeps batches to maxBatch', async () => {
    const { calls, write } = controlledWrite();
    const group = new GroupCommit(write, { maxBatch: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((i) => group.submit(i));
    for (let n = 0; n < 3; n++) {
      calls[n]!.resolve();
      await tick();
    }
    await Promise.all(all);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
  });

  it('writes a failed batch again item by item: one item that cannot be written fails alone', async () => {
    const written: string[][] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const group = new GroupCommit<string, string>(async (items) => {
      written.push([...items]);
      if (items[0] === 'first') {
        await gate;
      }
      if (items.includes('poison')) {
        throw new Error('cannot write poison');
      }
      return items.map((i) => `ok:${i}`);
    });
    const first = group.submit('first');
    const batch = ['b', 'poison', 'c'].map((i) => group.submit(i).then((r) => r, (err: Error) => `failed: ${err.message}`));
    release();
    expect(await first).toBe('ok:first');
    expect(await Promise.all(batch)).toEqual(['ok:b', 'failed: cannot write poison', 'ok:c']);
    expect(written).toEqual([['first'], ['b', 'poison', 'c'], ['b'], ['poison'], ['c']]);
  });

  it('rejects every item of a batch when its items fail one by one too (the store is down), and writes again later', async () => {
    let down = true;
    const group = new GroupCommit<string, string>((items) => (down ? Promise.reject(new Error('connection refused')) : Promise.resolve(items.map((i) => `ok:${i}`))));
    const outcomes = await Promise.allSettled(['a', 'b', 'c'].map((i) => group.submit(i)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    down = false;
    expect(await group.submit('d')).toBe('ok:d');
  });

  it('refuses a write that does not answer for every item', async () => {
    const group = new GroupCommit<string, string>(() => Promise.resolve([]));
    await expect(group.submit('a')).rejects.toThrow(/0 results for 1 items/);
  });
});
