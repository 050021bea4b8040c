import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../common/domain/digest.ts';
import type { Decision } from '../../common/domain/decision.ts';
import { DecisionStore } from './store.ts';

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
    expect(store.get('r.example', 'team/app', d('a'))).toBe(entry);
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
});
