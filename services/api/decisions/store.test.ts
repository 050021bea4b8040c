import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../common/domain/digest.ts';
import type { Decision } from '../../common/domain/decision.ts';
import { DecisionStore, INTERNED_MAX } from './store.ts';

const ALLOW: Decision = { allowed: true, reason: 'verified', message: 'signed', signers: [], policyVersion: 'v1', rule: null, mode: 'enforce' };
const d = (name: string) => sha256Digest(name);

describe('a bounded decision store', () => {
  it('drops the least recently used entry first: asked for and changed entries stay', () => {
    const store = new DecisionStore(3);
    const entry = store.entry(ALLOW, new Date(0));
    for (const name of ['a', 'b', 'c']) {
      store.set('r.example', 'team/app', d(name), entry);
    }
    // Admission asks for a; c changes. b is then the least recently used.
    expect(store.get('r.example', 'team/app', d('a'))).toMatchObject({ decision: ALLOW, verifiedAt: 0 });
    store.set('r.example', 'team/app', d('c'), store.entry(ALLOW, new Date(1)));
    store.set('r.example', 'team/app', d('d'), entry);
    expect(store.size).toBe(3);
    expect(store.peek('r.example', 'team/app', d('b'))).toBeUndefined();
    for (const kept of ['a', 'c', 'd']) {
      expect(store.peek('r.example', 'team/app', d(kept))).toBeDefined();
    }
  });

  it('peeking does not count as use', () => {
    const store = new DecisionStore(2);
    const entry = store.entry(ALLOW, new Date(0));
    store.set('r.example', 'x', d('a'), entry);
    store.set('r.example', 'x', d('b'), entry);
    store.peek('r.example', 'x', d('a'));
    store.set('r.example', 'x', d('c'), entry);
    expect(store.peek('r.example', 'x', d('a'))).toBeUndefined();
    expect(store.peek('r.example', 'x', d('b'))).toBeDefined();
  });

  it('shares identical decisions, holding at most INTERNED_MAX of them: one per repository cannot grow it for ever', () => {
    const store = new DecisionStore(10);
    const first = store.entry(ALLOW, new Date(0)).decision;
    expect(store.entry(ALLOW, new Date(1)).decision).toBe(first);
    for (let i = 0; i < INTERNED_MAX; i++) {
      store.entry({ ...ALLOW, allowed: false, reason: 'not_covered_by_policy', message: `no policy entry covers r.example/repo-${i}` }, new Date(0));
    }
    // Forgotten once the map was full: the same decision is held anew, and shared from then on.
    const again = store.entry(ALLOW, new Date(0)).decision;
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    expect(store.entry(ALLOW, new Date(0)).decision).toBe(again);
  });

  it('bounds tags the same way', () => {
    const store = new DecisionStore(2);
    store.setTag('r.example', 'x', 'v1', d('1'));
    store.setTag('r.example', 'x', 'v2', d('2'));
    expect(store.tag('r.example', 'x', 'v1')).toBe(d('1'));
    store.setTag('r.example', 'x', 'v3', d('3'));
    expect(store.tagCount).toBe(2);
    expect(store.tag('r.example', 'x', 'v2')).toBeUndefined();
  });

  it('keeps a decision\'s mode and per-scope variants, and interns only identical ones', () => {
    const store = new DecisionStore(4);
    const scoped: Decision = {
      ...ALLOW,
      allowed: false,
      reason: 'unsigned',
      mode: 'audit',
      scoped: { payments: { allowed: false, reason: 'unsigned', message: 'no signature', signers: [], rule: 'payments', mode: 'enforce' } },
    };
    store.set('r.example', 'x', d('a'), store.entry(scoped, new Date(0)));
    store.set('r.example', 'x', d('b'), store.entry({ ...scoped, scoped: undefined }, new Date(0)));
    const a = store.get('r.example', 'x', d('a'))!.decision;
    const b = store.get('r.example', 'x', d('b'))!.decision;
    expect(a.mode).toBe('audit');
    expect(a.scoped?.payments?.mode).toBe('enforce');
    expect(b.scoped).toBeUndefined();
    expect(a).not.toBe(b);
  });

  it('keeps a digest pushed to several repositories once for each, and answers each repository only with its own', () => {
    const store = new DecisionStore(3);
    const deny: Decision = { ...ALLOW, allowed: false, reason: 'unsigned', message: 'no signature' };
    store.set('r.example', 'team/app', d('a'), store.entry(ALLOW, new Date(1_000)));
    store.set('r.example', 'mirror/app', d('a'), store.entry(deny, new Date(2_000)));
    expect(store.size).toBe(2);
    expect(store.get('r.example', 'team/app', d('a'))).toMatchObject({ decision: { allowed: true }, verifiedAt: 1_000 });
    expect(store.get('r.example', 'mirror/app', d('a'))).toMatchObject({ decision: { allowed: false }, verifiedAt: 2_000 });
    // Same digest, a repository (or registry) with no entry of its own: nothing, never another's.
    expect(store.get('r.example', 'other/app', d('a'))).toBeUndefined();
    expect(store.get('s.example', 'team/app', d('a'))).toBeUndefined();
    // Replacing one repository's entry leaves the other's.
    store.set('r.example', 'team/app', d('a'), store.entry(deny, new Date(3_000)));
    expect(store.size).toBe(2);
    expect(store.get('r.example', 'team/app', d('a'))).toMatchObject({ decision: { allowed: false }, verifiedAt: 3_000 });
    expect(store.get('r.example', 'mirror/app', d('a'))?.verifiedAt).toBe(2_000);
    // The bound counts entries: two more push the digest with two entries out whole.
    store.set('r.example', 'team/app', d('b'), store.entry(ALLOW, new Date(0)));
    expect(store.size).toBe(3);
    store.set('r.example', 'team/app', d('c'), store.entry(ALLOW, new Date(0)));
    expect(store.size).toBeLessThanOrEqual(3);
    expect(store.peek('r.example', 'mirror/app', d('a'))).toBeUndefined();
    expect(store.peek('r.example', 'team/app', d('c'))).toBeDefined();
  });

  it('gives back verification and expiry times to the millisecond, from long before 2000 to long after', () => {
    const store = new DecisionStore(8);
    const times = [0, 1, 946_684_799_999, 946_684_800_000, Date.parse('2026-11-29T23:10:01.234Z'), Date.parse('2067-12-31T23:59:59.999Z'), -1_000_000_000_001];
    times.forEach((t, i) => store.set('r.example', 'x', d(`t${i}`), store.entry({ ...ALLOW, expiresAt: i === 1 ? new Date(t + 5).toISOString() : undefined }, new Date(t))));
    times.forEach((t, i) => expect(store.get('r.example', 'x', d(`t${i}`))?.verifiedAt).toBe(t));
    expect(store.get('r.example', 'x', d('t1'))?.expiresAt).toBe(6);
    expect(store.get('r.example', 'x', d('t0'))?.expiresAt).toBeUndefined();
    // The oldest verification's hour (1 ms after the epoch: hour 0); times not after the epoch are left out.
    expect(store.oldestVerifiedAt()).toBe(0);
  });

  it('keeps the oldest verification (to the hour) as entries are replaced, evicted and adopted, without walking the table', () => {
    const H = 3_600_000;
    const store = new DecisionStore(3);
    const at = (hours: number) => store.entry(ALLOW, new Date(hours * H + 123));
    expect(store.oldestVerifiedAt()).toBeNull();
    store.set('r.example', 'x', d('a'), at(10));
    store.set('r.example', 'x', d('b'), at(5));
    store.set('r.example', 'x', d('c'), at(7));
    expect(store.oldestVerifiedAt()).toBe(5 * H);
    // b verified again: the oldest is now c's.
    store.set('r.example', 'x', d('b'), at(9));
    expect(store.oldestVerifiedAt()).toBe(7 * H);
    // d evicts the least recently used (a, at 10 h) and is older than all.
    store.set('r.example', 'x', d('d'), at(1));
    expect(store.peek('r.example', 'x', d('a'))).toBeUndefined();
    expect(store.oldestVerifiedAt()).toBe(1 * H);
    // d's digest in a second repository too (2 h; the bound of 3 entries evicts c), then d's first
    // entry verified again (8 h): each entry counted once, whatever shares its slot.
    store.set('r.example', 'y', d('d'), at(2));
    store.set('r.example', 'x', d('d'), at(8));
    expect(store.oldestVerifiedAt()).toBe(2 * H);
    // A store adopting another's decisions answers with the other's oldest.
    const next = new DecisionStore(3);
    next.set('r.example', 'x', d('e'), next.entry(ALLOW, new Date(4 * H)));
    store.adoptDecisions(next);
    expect(store.oldestVerifiedAt()).toBe(4 * H);
    expect(next.oldestVerifiedAt()).toBeNull();
  });
});
