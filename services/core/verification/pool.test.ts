import { createPublicKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest, sha256Digest } from '../../common/domain/digest.ts';
import { cosignLayersFromFixture, fixturePath, readFixture } from '../../../test/helpers/fixtures.ts';
import { CRASH_SUBJECT, HANG_SUBJECT } from '../../../test/helpers/pool-faulty-worker.ts';
import { createVerificationPool, type VerificationPool } from './pool.ts';
import { certificateKeyFingerprint, keyFingerprint, loadTrustedRoot, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';
import { createSignatureVerifier, type SignatureVerifier } from './verifier.ts';

const DIR = 'cosign/connaisseur-testimage/manifests';
const KEYLESS = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
const KEYED = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');
const layer = (subject: string) => cosignLayersFromFixture(DIR, `sha256-${subject.slice(7)}.sig.json`)[0]!;

describe('the verification pool', () => {
  let root: LoadedTrustedRoot;
  let keys: TrustedKey[];
  let verifier: SignatureVerifier;
  let pool: VerificationPool;

  beforeAll(async () => {
    root = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const alice = createPublicKey(readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8'));
    keys = [{ name: 'alice', key: alice, fingerprint: keyFingerprint(alice) }];
    verifier = createSignatureVerifier(root, keys);
    pool = createVerificationPool([root], keys, { size: 2 });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('gives the verdicts the verifier gives: keyless, key-based, a bundle, and failures', async () => {
    const artifact = readFixture('sigstore-bundles/conformance/a.txt');
    const bundle = readFixture('sigstore-bundles/conformance/happy-path-v0.3/bundle.sigstore.json');
    const dsse = readFixture('sigstore-bundles/conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json');
    const statement = JSON.parse(Buffer.from((JSON.parse(dsse.toString('utf8')) as { dsseEnvelope: { payload: string } }).dsseEnvelope.payload, 'base64').toString('utf8')) as {
      subject: { digest: { sha256: string } }[];
    };
    const dsseSubject = parseDigest(`sha256:${statement.subject[0]!.digest.sha256}`);
    const replayed = layer(KEYLESS);
    const cases = [
      [pool.verifyCosignLayer(layer(KEYLESS), KEYLESS), verifier.verifyCosignLayer(layer(KEYLESS), KEYLESS)],
      [pool.verifyCosignLayer(layer(KEYED), KEYED), verifier.verifyCosignLayer(layer(KEYED), KEYED)],
      [pool.verifyCosignLayer(replayed, KEYED), verifier.verifyCosignLayer(replayed, KEYED)],
      [pool.verifyCosignLayer(layer(KEYLESS), KEYLESS, { subject: 'someone@example.com' }), verifier.verifyCosignLayer(layer(KEYLESS), KEYLESS, { subject: 'someone@example.com' })],
      [
        pool.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: artifact }),
        verifier.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: artifact }),
      ],
      [pool.verifyCosignAttestation(layer(KEYLESS), KEYLESS), verifier.verifyCosignAttestation(layer(KEYLESS), KEYLESS)],
      [pool.verifyBundle(dsse, { digest: dsseSubject }), verifier.verifyBundle(dsse, { digest: dsseSubject })],
      [pool.verifyBundle(dsse, { digest: KEYLESS }), verifier.verifyBundle(dsse, { digest: KEYLESS })],
      [pool.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: Buffer.from('another artifact') }), verifier.verifyBundle(bundle, { digest: sha256Digest(artifact), bytes: Buffer.from('another artifact') })],
      [pool.verifyBundle(Buffer.from('{}'), { digest: KEYLESS }), verifier.verifyBundle(Buffer.from('{}'), { digest: KEYLESS })],
      [pool.verifyCosignLayer({ ...layer(KEYED), payload: Buffer.from('tampered') }, KEYED), verifier.verifyCosignLayer({ ...layer(KEYED), payload: Buffer.from('tampered') }, KEYED)],
    ] as const;
    const outcomes: string[] = [];
    for (const [pooled, direct] of cases) {
      const v = await pooled;
      expect(v).toEqual(direct);
      outcomes.push(v.outcome);
    }
    expect(outcomes.slice(0, 7)).toEqual(['verified', 'verified', 'digest_mismatch', 'identity_mismatch', 'verified', 'malformed', 'verified']);
    expect(outcomes.slice(7).every((o) => o !== 'verified')).toBe(true);
  });

  it('answers many requests at once, spread over its threads', async () => {
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => pool.verifyCosignLayer(layer(KEYLESS), KEYLESS)));
    expect(new Set(verdicts.map((v) => v.outcome))).toEqual(new Set(['verified']));
  });

  it('takes new trust for every request made after setTrust, threads started later too', async () => {
    const script = new URL('../../../test/helpers/pool-faulty-worker.ts', import.meta.url);
    const p = createVerificationPool([root], [], { size: 2, script });
    try {
      expect((await p.verifyCosignLayer(layer(KEYED), KEYED)).outcome).toBe('untrusted_root');
      p.setTrust([root], keys);
      const after = await Promise.all([p.verifyCosignLayer(layer(KEYED), KEYED), p.verifyCosignLayer(layer(KEYED), KEYED)]);
      expect(after).toEqual([verifier.verifyCosignLayer(layer(KEYED), KEYED), verifier.verifyCosignLayer(layer(KEYED), KEYED)]);
      // Both threads replaced after the change: their replacements trust the keys too.
      await Promise.allSettled([p.verifyCosignLayer(layer(KEYED), parseDigest(CRASH_SUBJECT)), p.verifyCosignLayer(layer(KEYED), parseDigest(CRASH_SUBJECT))]);
      expect((await Promise.all([p.verifyCosignLayer(layer(KEYED), KEYED), p.verifyCosignLayer(layer(KEYED), KEYED)])).map((v) => v.outcome)).toEqual(['verified', 'verified']);
      p.setTrust([root], []);
      expect((await p.verifyCosignLayer(layer(KEYED), KEYED)).outcome).toBe('untrusted_root');
    } finally {
      await p.close();
    }
  });

  it('a thread that dies fails what it held and is replaced: later requests are verified', async () => {
    const script = new URL('../../../test/helpers/pool-faulty-worker.ts', import.meta.url);
    const p = createVerificationPool([root], keys, { size: 1, script });
    try {
      expect((await p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).outcome).toBe('verified');
      const held = [p.verifyCosignLayer(layer(KEYLESS), parseDigest(CRASH_SUBJECT)), p.verifyCosignLayer(layer(KEYLESS), KEYLESS)];
      const outcomes = await Promise.allSettled(held);
      expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: { message: 'verification thread exited with code 70' } });
      // The request queued behind the crash was lost with the thread: rejected too (its job retries), never left hanging.
      expect(outcomes[1]!.status).toBe('rejected');
      expect(await p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).toEqual(verifier.verifyCosignLayer(layer(KEYLESS), KEYLESS));
    } finally {
      await p.close();
    }
  });

  it('a thread that does not answer in time is failed and replaced', async () => {
    const script = new URL('../../../test/helpers/pool-faulty-worker.ts', import.meta.url);
    const p = createVerificationPool([root], keys, { size: 1, script, timeoutMs: 2_000 });
    try {
      expect((await p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).outcome).toBe('verified');
      await expect(p.verifyCosignLayer(layer(KEYLESS), parseDigest(HANG_SUBJECT))).rejects.toThrow(/did not answer within 2000 ms/);
      expect((await p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).outcome).toBe('verified');
    } finally {
      await p.close();
    }
  });

  it('threads that die before they are ready are restarted after a growing pause, calls refused meanwhile', async () => {
    const script = new URL('../../../test/helpers/pool-broken-worker.ts', import.meta.url);
    const p = createVerificationPool([root], keys, { size: 1, script });
    try {
      await expect(p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).rejects.toThrow(/cannot start/);
      // The second death in a row pauses the slot: calls are refused at once rather than queued.
      const refused = await eventuallyRejects(() => p.verifyCosignLayer(layer(KEYLESS), KEYLESS), /no verification thread is running/);
      expect(refused).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('rejects calls once closed', async () => {
    const p = createVerificationPool([root], keys, { size: 1 });
    await p.close();
    await expect(p.verifyCosignLayer(layer(KEYLESS), KEYLESS)).rejects.toThrow(/closed/);
  });
});

/** Calls `call` until it rejects with `pattern` (within 10 s). */
async function eventuallyRejects(call: () => Promise<unknown>, pattern: RegExp): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const outcome = await call().then(
      () => null,
      (err: unknown) => (err as Error).message,
    );
    if (outcome !== null && pattern.test(outcome)) {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe('certificateKeyFingerprint', () => {
  it('equals the fingerprint of the exported key for every certificate in the trusted roots and fixtures', async () => {
    const root = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const staging = await loadTrustedRoot(fixturePath('trust-roots/staging/trusted_root.json'));
    const certs = [root, staging]
      .flatMap((r) => r.root.certificateAuthorities.flatMap((ca) => ca.certChain?.certificates ?? []))
      .map((c) => new X509Certificate(c.rawBytes));
    certs.push(new X509Certificate(layer(KEYLESS).annotations['dev.sigstore.cosign/certificate']!));
    certs.push(new X509Certificate(readFixture('cosign/containers-image/fulcio_v1.crt.pem')));
    expect(certs.length).toBeGreaterThan(5);
    for (const cert of certs) {
      expect(certificateKeyFingerprint(cert)).toBe(keyFingerprint(cert.publicKey));
    }
  });
});
