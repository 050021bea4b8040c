// Verification cost per core, as a ratio to the raw node:crypto ECDSA P-256 verify rate measured
// in the same repetition: real public-good signatures from test/fixtures (a keyless cosign
// signature — Fulcio chain, SCT, Rekor SET, signature — and a key-based one) through Signet's
// verifier, which is what the worker runs for every signature layer it has not seen; the same
// keyless signature with sigstore-js doing every step (no fast certificate step: the reference);
// Sigstore bundles v0.3; and a verification-cache hit. Then one process verifying the keyless
// signature: on its own thread back to back (a worker with SIGNET_VERIFY_THREADS=0), and through
// the verification pool with 1 … (cores) threads, as ratios to the former in the same repetition
// (wall-clock time: what the pool buys is throughput, and other load on the machine shows in it).
//
//   node scripts/bench-verify.ts [--seconds 2] [--reps 3]   (seconds: per figure and repetition)
//
// Prints JSON: for each figure the median of the repetitions and their spread (min, max).
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_TRUSTED_ROOTS } from '../services/common/config.ts';
import { parseDigest, sha256Digest } from '../services/common/domain/digest.ts';
import type { SignatureVerdict } from '../services/common/domain/signature.ts';
import { createCachingVerifier } from '../services/core/verification/cache.ts';
import { createVerificationPool, type VerificationPool } from '../services/core/verification/pool.ts';
import { keyFingerprint, loadTrustedRoot } from '../services/core/verification/trust.ts';
import { createSignatureVerifier } from '../services/core/verification/verifier.ts';
import { cosignLayersFromFixture, readFixture } from '../test/helpers/fixtures.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, reps: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);
const reps = Math.max(1, Number(values.reps));

/** CPU seconds this process has used (every thread: the loop, GC, crypto). */
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * Calls per CPU second of each function — the cost on one core, which other load on a shared
 * machine changes far less than calls per wall second. The functions take turns in 50 ms slices
 * for `seconds` each (after a warm-up), so they all run under the same conditions.
 */
function rates(fns: Readonly<Record<string, () => unknown>>): Record<string, number> {
  const names = Object.keys(fns);
  const acc = Object.fromEntries(names.map((n) => [n, { calls: 0, cpu: 0 }]));
  const slice = (name: string, ms: number, count: boolean) => {
    const fn = fns[name]!;
    let calls = 0;
    const cpu = cpuSeconds();
    const end = performance.now() + ms;
    while (performance.now() < end) {
      fn();
      calls++;
    }
    if (count) {
      acc[name]!.calls += calls;
      acc[name]!.cpu += cpuSeconds() - cpu;
    }
  };
  for (const name of names) {
    slice(name, 200, false);
  }
  for (let t = 0; t < seconds * 1000; t += 50) {
    for (const name of names) {
      slice(name, 50, true);
    }
  }
  return Object.fromEntries(names.map((n) => [n, acc[n]!.calls / acc[n]!.cpu]));
}

/**
 * Completed verifications per wall second of each way one process can verify: `inProcess` calls the
 * verifier on this thread back to back (what a worker without the pool does); a pool keeps
 * `inflight` calls per thread outstanding all the time. They take turns in 500 ms slices for
 * `seconds` each, so all see the same load.
 */
async function wallRates(
  runners: Readonly<Record<string, (ms: number) => Promise<number>>>,
): Promise<Record<string, { rate: number; cores: number }>> {
  const names = Object.keys(runners);
  const acc = Object.fromEntries(names.map((n) => [n, { calls: 0, ms: 0, cpu: 0 }]));
  for (const name of names) {
    await runners[name]!(300);
  }
  for (let t = 0; t < seconds * 1000; t += 500) {
    for (const name of names) {
      const start = performance.now();
      const cpu = cpuSeconds();
      acc[name]!.calls += await runners[name]!(500);
      acc[name]!.cpu += cpuSeconds() - cpu;
      acc[name]!.ms += performance.now() - start;
    }
  }
  // cores: CPU seconds the process used per wall second (pool threads and the calling thread).
  return Object.fromEntries(names.map((n) => [n, { rate: acc[n]!.calls / (acc[n]!.ms / 1000), cores: acc[n]!.cpu / (acc[n]!.ms / 1000) }]));
}

/** Runs `call` through `pool` for `ms`, `pool.size * 4` calls in flight; resolves to how many completed. */
function poolRunner(pool: VerificationPool, call: (p: VerificationPool) => Promise<SignatureVerdict>) {
  return async (ms: number): Promise<number> => {
    const until = performance.now() + ms;
    let n = 0;
    const lane = async () => {
      while (performance.now() < until) {
        const v = await call(pool);
        if (v.outcome !== 'verified') {
          throw new Error(`pool verdict: ${v.outcome} ${v.reason ?? ''}`);
        }
        n++;
      }
    };
    await Promise.all(Array.from({ length: pool.size * 4 }, lane));
    return n;
  };
}

/** Runs `call` on this thread back to back for `ms`; resolves to how many completed. */
function inProcessRunner(call: () => SignatureVerdict) {
  return (ms: number): Promise<number> => {
    const until = performance.now() + ms;
    let n = 0;
    while (performance.now() < until) {
      if (call().outcome !== 'verified') {
        throw new Error('in-process verdict: not verified');
      }
      n++;
    }
    return Promise.resolve(n);
  };
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(xs: readonly number[], digits: number): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const r = (x: number) => Number(x.toFixed(digits));
  return { median: r(mid), min: r(s[0]!), max: r(s.at(-1)!) };
}

const DIR = 'cosign/connaisseur-testimage/manifests';
const KEYLESS = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
const KEYED = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');
const aliceKey = createPublicKey(readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8'));
const root = await loadTrustedRoot(DEFAULT_TRUSTED_ROOTS[0]!);
const keys = [{ name: 'alice', key: aliceKey, fingerprint: keyFingerprint(aliceKey) }];
const verifier = createSignatureVerifier(root, keys);
const reference = createSignatureVerifier(root, keys, { fastPath: false });
const keyless = cosignLayersFromFixture(DIR, `sha256-${KEYLESS.slice(7)}.sig.json`)[0]!;
const keyed = cosignLayersFromFixture(DIR, `sha256-${KEYED.slice(7)}.sig.json`)[0]!;

// Sigstore bundles v0.3 from the sigstore-conformance suite (public-good): a message signature
// (Rekor inclusion proof, checkpoint and SET) and a DSSE in-toto statement (the cosign v3 and
// GitHub attestation shape).
const conformance = (c: string) => readFixture(`sigstore-bundles/conformance/${c}/bundle.sigstore.json`);
const artifact = readFixture('sigstore-bundles/conformance/a.txt');
const artifactDigest = sha256Digest(artifact);
const messageBundle = conformance('happy-path-v0.3');
const dsseBundle = conformance('happy-path-intoto-in-dsse-v3');
const dsseEnvelope = (JSON.parse(dsseBundle.toString('utf8')) as { dsseEnvelope: { payload: string } }).dsseEnvelope;
const dsseStatement = JSON.parse(Buffer.from(dsseEnvelope.payload, 'base64').toString('utf8')) as { subject: { digest: { sha256: string } }[] };
const dsseSubject = `sha256:${dsseStatement.subject[0]!.digest.sha256}` as const;

const cases: Record<string, () => SignatureVerdict> = {
  keyless: () => verifier.verifyCosignLayer(keyless, KEYLESS),
  keylessSigstoreOnly: () => reference.verifyCosignLayer(keyless, KEYLESS),
  key: () => verifier.verifyCosignLayer(keyed, KEYED),
  bundleMessage: () => verifier.verifyBundle(messageBundle, { digest: artifactDigest, bytes: artifact }),
  bundleDsse: () => verifier.verifyBundle(dsseBundle, { digest: dsseSubject }),
};
for (const [name, run] of Object.entries(cases)) {
  const v = run();
  if (v.outcome !== 'verified') {
    throw new Error(`fixture ${name} did not verify: ${v.outcome} ${v.reason ?? ''}`);
  }
}
if (JSON.stringify(cases.keyless!()) !== JSON.stringify(cases.keylessSigstoreOnly!())) {
  throw new Error('the fast path and sigstore-js disagree on the keyless fixture');
}

// The verification cache: a signature seen again (a re-push, a promotion) costs a hash and a lookup.
// Over the in-process verifier every answer is at once (a verdict, not a promise).
const cached = createCachingVerifier(verifier);
await cached.verifyCosignLayer(keyless, KEYLESS);

// Yardstick: one ECDSA P-256/SHA-256 verify of a payload the size of a cosign simple-signing one.
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signature = sign('sha256', keyless.payload, privateKey);
const rawEcdsa = () => {
  if (!verify('sha256', keyless.payload, publicKey, signature)) {
    throw new Error('raw verify failed');
  }
};

// One process verifying: on its own thread, or through pools of 1 … (cores) threads.
const threads = availableParallelism();
const pools = Array.from({ length: threads }, (_, i) => createVerificationPool([root], keys, { size: i + 1 }));
const pool = pools.at(-1)!;
const single = pools[0]!;
const poolCall = (p: VerificationPool) => p.verifyCosignLayer(keyless, KEYLESS);
for (const p of pools) {
  if (JSON.stringify(await poolCall(p)) !== JSON.stringify(cases.keyless!())) {
    throw new Error('the pool and the verifier disagree on the keyless fixture');
  }
}

const samples: Record<string, number[]> = {};
const push = (k: string, v: number) => (samples[k] ??= []).push(v);
for (let rep = 0; rep < reps; rep++) {
  process.stderr.write(`[bench-verify] repetition ${rep + 1}/${reps}\n`);
  const r = rates({ raw: rawEcdsa, ...cases, cacheHit: () => cached.verifyCosignLayer(keyless, KEYLESS) });
  for (const [name, v] of Object.entries(r)) {
    push(name, v);
    push(`${name}VsRaw`, v / r.raw!);
  }
  push('keylessFastVsSigstoreOnly', samples.keyless!.at(-1)! / samples.keylessSigstoreOnly!.at(-1)!);
  const p = await wallRates({
    inProcess: inProcessRunner(cases.keyless!),
    ...Object.fromEntries(pools.map((pl) => [`pool${pl.size}`, poolRunner(pl, poolCall)])),
  });
  push('inProcess', p.inProcess!.rate);
  push('inProcessCores', p.inProcess!.cores);
  for (const pl of pools) {
    push(`pool${pl.size}`, p[`pool${pl.size}`]!.rate);
    push(`pool${pl.size}Cores`, p[`pool${pl.size}`]!.cores);
    push(`pool${pl.size}VsInProcess`, p[`pool${pl.size}`]!.rate / p.inProcess!.rate);
  }
  push('poolVsOneThread', p[`pool${pool.size}`]!.rate / p[`pool${single.size}`]!.rate);
}
await Promise.all(pools.map((pl) => pl.close()));

const s = (k: string, digits = 0) => spread(samples[k]!, digits);
console.log(
  JSON.stringify(
    {
      seconds,
      repetitions: reps,
      fastPath: verifier.fastPathStats,
      perCore: {
        rawEcdsaP256VerifiesPerSecond: s('raw'),
        keylessVerificationsPerSecond: s('keyless'),
        keylessSigstoreOnlyVerificationsPerSecond: s('keylessSigstoreOnly'),
        keyVerificationsPerSecond: s('key'),
        bundleV03MessageSignaturesPerSecond: s('bundleMessage'),
        bundleV03DsseAttestationsPerSecond: s('bundleDsse'),
        cacheHitsPerSecond: s('cacheHit'),
      },
      ratios: {
        keylessVsRawEcdsa: s('keylessVsRaw', 4),
        keylessSigstoreOnlyVsRawEcdsa: s('keylessSigstoreOnlyVsRaw', 4),
        keylessFastVsSigstoreOnly: s('keylessFastVsSigstoreOnly', 2),
        keyVsRawEcdsa: s('keyVsRaw', 3),
        bundleMessageVsRawEcdsa: s('bundleMessageVsRaw', 4),
        bundleDsseVsRawEcdsa: s('bundleDsseVsRaw', 4),
        cacheHitVsRawEcdsa: s('cacheHitVsRaw', 2),
      },
      pool: {
        threads,
        oneThreadKeylessVerificationsPerSecond: s(`pool${single.size}`),
        keylessVerificationsPerSecond: s(`pool${pool.size}`),
        speedupVsOneThread: s('poolVsOneThread', 2),
        coresBusyOneThread: s(`pool${single.size}Cores`, 2),
        coresBusy: s(`pool${pool.size}Cores`, 2),
      },
      // One worker process, keyless signatures per wall second: verifying on its own thread (as
      // with SIGNET_VERIFY_THREADS=0) and through a pool of each size, as ratios to the former.
      workerProcess: {
        inProcessKeylessVerificationsPerSecond: s('inProcess'),
        inProcessCoresBusy: s('inProcessCores', 2),
        ...Object.fromEntries(
          pools.flatMap((pl) => [
            [`pool${pl.size}KeylessVerificationsPerSecond`, s(`pool${pl.size}`)],
            [`pool${pl.size}CoresBusy`, s(`pool${pl.size}Cores`, 2)],
            [`pool${pl.size}VsInProcess`, s(`pool${pl.size}VsInProcess`, 2)],
          ]),
        ),
      },
    },
    null,
    2,
  ),
);
