import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, MAX_PAGE, pageSize } from './pagination.ts';
import { tokenAllowed } from './yoga.ts';
import { createHash } from 'node:crypto';

describe('pagination', () => {
  it('round-trips a cursor of its own kind and refuses anything else', () => {
    expect(decodeCursor('img', encodeCursor('img', '9223372036854775807'))).toBe('9223372036854775807');
    expect(decodeCursor('img', null)).toBeNull();
    expect(decodeCursor('img', undefined)).toBeNull();
    for (const bad of [encodeCursor('own', '1'), encodeCursor('img', '-1'), encodeCursor('img', '1 OR 1=1'), 'not base64 at all!', '', 'x'.repeat(100)]) {
      expect(() => decodeCursor('img', bad), bad).toThrow(/is not a cursor of this list/);
    }
  });

  it('defaults the page size and refuses sizes outside 1..100', () => {
    expect(pageSize(undefined)).toBe(20);
    expect(pageSize(null)).toBe(20);
    expect(pageSize(1)).toBe(1);
    expect(pageSize(MAX_PAGE)).toBe(100);
    for (const bad of [0, -1, 101, 1.5]) {
      expect(() => pageSize(bad)).toThrow(/first must be between 1 and 100/);
    }
  });
});

describe('tokenAllowed', () => {
  const tokens = ['first-token-0123456789', 'second-token-0123456789'].map((t) => createHash('sha256').update(t).digest());
  it('accepts any configured bearer token and nothing else', () => {
    expect(tokenAllowed('Bearer first-token-0123456789', tokens)).toBe(true);
    expect(tokenAllowed('bearer second-token-0123456789', tokens)).toBe(true);
    for (const bad of [undefined, '', 'Bearer', 'Bearer ', 'Bearer first-token-012345678', 'Basic first-token-0123456789', 'first-token-0123456789']) {
      expect(tokenAllowed(bad, tokens), String(bad)).toBe(false);
    }
    expect(tokenAllowed('Bearer anything-at-all-here', [])).toBe(false);
  });
});
