import { describe, expect, it } from 'vitest';
import { compareIds, fellBehind, type Window } from './stream-feed.ts';

const win = (first: string | null, lastGenerated: string, length: number, entriesAdded: number | null): Window => ({ first, lastGenerated, length, entriesAdded });

describe('stream entry IDs', () => {
  it('compare by milliseconds, then sequence, as numbers', () => {
    expect(compareIds('10-0', '9-5')).toBe(1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('1732000000000-3', '1732000000000-3')).toBe(0);
  });
});

describe('falling behind the window (Redis ≥ 7: counted)', () => {
  it('resumes while every entry added after the last one read is retained', () => {
    // Read entry 50 of 60; 20 retained: 10 after it, all there.
    expect(fellBehind(win('41-0', '60-0', 20, 60), { id: '50-0', seq: 50 })).toBe(false);
    // The entry read last was trimmed itself, but nothing after it: nothing is missing.
    expect(fellBehind(win('51-0', '60-0', 10, 60), { id: '50-0', seq: 50 })).toBe(false);
  });

  it('reloads when an entry after the last one read was trimmed', () => {
    expect(fellBehind(win('52-0', '60-0', 9, 60), { id: '50-0', seq: 50 })).toBe(true);
  });

  it('reloads when the stream vanished, or its count or last ID went backwards', () => {
    expect(fellBehind(null, { id: '50-0', seq: 50 })).toBe(true);
    expect(fellBehind(win('1-0', '40-0', 40, 40), { id: '50-0', seq: 50 })).toBe(true);
    // Recreated after a data loss: new IDs, a smaller count.
    expect(fellBehind(win('90-0', '95-0', 6, 6), { id: '50-0', seq: 50 })).toBe(true);
  });

  it('never reloads a follower that started on an empty stream while nothing was trimmed', () => {
    expect(fellBehind(null, { id: '0-0', seq: 0 })).toBe(false);
    expect(fellBehind(win('1-0', '9-0', 9, 9), { id: '0-0', seq: 0 })).toBe(false);
    expect(fellBehind(win('3-0', '9-0', 7, 9), { id: '0-0', seq: 0 })).toBe(true);
  });
});

describe('falling behind the window (before Redis 7: the first retained ID)', () => {
  it('reloads when the first retained ID is after the last one read', () => {
    expect(fellBehind(win('41-0', '60-0', 20, null), { id: '50-0', seq: null })).toBe(false);
    expect(fellBehind(win('51-0', '60-0', 10, null), { id: '50-0', seq: null })).toBe(true);
    expect(fellBehind(win('3-0', '9-0', 7, null), { id: '0-0', seq: null })).toBe(false);
  });
});
