import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../common/domain/digest.ts';
import { unprovenVerdict, type SignatureVerdict } from '../../common/domain/signature.ts';
import { createCachingVerifier } from './cache.ts';
import type { SignatureChecks } from './verifier.ts';

const SUBJECT = parseDigest(`sha256:${'a'.repeat(64)}`);
const layer = { payload: Buffer.from('{"critical":{}}'), annotations: { 'dev.cosignproject.cosign/signature': 'c2ln' } };

/** Checks that answer later, as the verification pool does: each call waits for the test to settle it. */
function laterChecks() {
  const calls: { resolve: (v: SignatureVerdict) => void; reject: (e: Error) => void }[] = [];
  const checks: SignatureChecks & { version: string } = {
    version: 'v1',
    trustRootVersion: 'root',
    verifyCosignLayer: () => new Promise((resolve, reject) => calls.push({ resolve, reject })),
    verifyCosignAttestation: () => Promise.reject(new Error('not used')),
    verifyBundle: () => Promise.reject(new Error('not used')),
  };
  return { calls, checks };
}

const verified = unprovenVerdict('verified', null, 'root');

describe('the verification cache over checks that answer later (the pool)', () => {
  it('verifies a signature asked for twice meanwhile once, and answers a later ask at once', async () => {
    const { calls, checks } = laterChecks();
    const cache = createCachingVerifier(checks);
    const first = cache.verifyCosignLayer(layer, SUBJECT);
    const second = cache.verifyCosignLayer(layer, SUBJECT);
    expect(calls).toHaveLength(1);
    calls[0]!.resolve(verified);
    expect(await first).toBe(verified);
    expect(await second).toBe(verified);
    // Kept: no promise, no call.
    expect(cache.verifyCosignLayer(layer, SUBJECT)).toBe(verified);
    expect(calls).toHaveLength(1);
    expect(cache.stats()).toEqual({ hits: 2, misses: 1, size: 1 });
  });

  it('keeps no failure: a thread that died is asked again next time', async () => {
    const { calls, checks } = laterChecks();
    const cache = createCachingVerifier(checks);
    const first = cache.verifyCosignLayer(layer, SUBJECT);
    calls[0]!.reject(new Error('verification thread exited with code 1'));
    await expect(first).rejects.toThrow(/exited/);
    const again = cache.verifyCosignLayer(layer, SUBJECT);
    expect(calls).toHaveLength(2);
    calls[1]!.resolve(verified);
    expect(await again).toBe(verified);
  });

  it('never answers across trust versions', async () => {
    const { calls, checks } = laterChecks();
    const cache = createCachingVerifier(checks);
    const before = cache.verifyCosignLayer(layer, SUBJECT);
    calls[0]!.resolve(verified);
    await before;
    checks.version = 'v2';
    void cache.verifyCosignLayer(layer, SUBJECT);
    expect(calls).toHaveLength(2);
  });
});
