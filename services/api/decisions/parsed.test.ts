import { describe, expect, it } from 'vitest';
import { BoundedParseCache } from './parsed.ts';

describe('BoundedParseCache', () => {
  it('never holds more than its byte budget, however many distinct keys arrive', () => {
    const budget = 64 * 1024;
    const cache = new BoundedParseCache<number>(budget);
    for (let i = 0; i < 100_000; i++) {
      cache.set(`registry.example/flood/${'x'.repeat(i % 200)}:${i}`, i);
      expect(cache.bytes).toBeLessThanOrEqual(budget);
    }
    expect(cache.size).toBeGreaterThan(0);
  });

  it('keeps what fits and counts a key once', () => {
    const cache = new BoundedParseCache<string>(1024 * 1024);
    cache.set('a/b:1', 'one');
    cache.set('a/b:1', 'again');
    expect(cache.get('a/b:1')).toBe('one');
    expect(cache.bytes).toBe(BoundedParseCache.estimate('a/b:1'));
  });
});
