import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import type { Digest } from '../../common/domain/digest.ts';
import type { SignatureVerdict } from '../../common/domain/signature.ts';
import type { CosignLayer } from './cosign-layer.ts';
import type { LoadedTrustedRoot, TrustedKey } from './trust.ts';
import type { BundleSubject, ExpectedIdentity } from './verifier.ts';

/** What each pool thread builds its verifier from (structured-clone safe). */
export interface PoolWorkerData {
  readonly roots: readonly { readonly json: unknown; readonly version: string; readonly path: string }[];
  readonly keys: readonly { readonly name: string; readonly fingerprint: string; readonly pem: string }[];
  readonly fastPath: boolean;
}

export type PoolMethod = 'verifyCosignLayer' | 'verifyCosignAttestation' | 'verifyBundle';

export interface PoolRequest {
  readonly id: number;
  readonly method: PoolMethod;
  readonly args: readonly unknown[];
}

/** What the pool tells a thread: verify, or trust this from now on (the requests after it use it). */
export type PoolMessage = PoolRequest | { readonly trust: PoolWorkerData };

/** What a thread answers: `ready` once its verifier is built, then one verdict or error per request. */
export type PoolResponse = { readonly ready: true } | { readonly id: number; readonly verdict: SignatureVerdict } | { readonly id: number; readonly error: string };

/** `SignatureVerifier`'s checks on worker threads: the same verdicts, off the calling thread. */
export interface VerificationPool {
  readonly size: number;
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  /**
   * Trust these roots and keys from now on: every request made after this call is verified under
   * them (each thread takes the new trust before the requests that follow it), threads started
   * later too.
   */
  setTrust(roots: readonly LoadedTrustedRoot[], keys: readonly TrustedKey[]): void;
  /** Stops the threads; what is still in flight is rejected. */
  close(): Promise<void>;
}

export interface PoolOptions {
  /** Threads; default one per core. */
  readonly size?: number;
  readonly fastPath?: boolean;
  /**
   * A request not answered within this long is failed and its thread replaced (with everything it
   * held): verification takes milliseconds, so a thread this late is stuck. Default 60 s.
   */
  readonly timeoutMs?: number;
  /** The threads' module; tests substitute one that crashes. */
  readonly script?: URL;
}

interface Pending {
  readonly resolve: (v: SignatureVerdict) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Fails the current thread: rejects what it holds, stops it and starts its replacement. */
  fail: (err: Error) => void;
  /** Threads of this slot that died before they were ready, in a row (a crash loop backs off). */
  failedStarts: number;
  /** False while a replacement waits out its backoff: no request goes to the slot. */
  up: boolean;
}

/** Backoff before replacing a thread that died before it was ready: 0.1 s doubling to 5 s. */
const restartDelayMs = (failedStarts: number) => (failedStarts <= 1 ? 0 : Math.min(5_000, 100 * 2 ** (failedStarts - 2)));

function workerData(roots: readonly LoadedTrustedRoot[], keys: readonly TrustedKey[], fastPath: boolean): PoolWorkerData {
  return {
    roots: roots.map((r) => ({ json: TrustedRoot.toJSON(r.root), version: r.version, path: r.path })),
    keys: keys.map((k) => ({ name: k.name, fingerprint: k.fingerprint, pem: k.key.export({ type: 'spki', format: 'pem' }).toString() })),
    fastPath,
  };
}

/**
 * A fixed set of worker threads (one per core by default), each with its own verifier built from
 * the same roots and keys as `createSignatureVerifier` would: verification is pure CPU work,
 * so one process verifies on every core. Each request goes to the thread with the fewest in
 * flight. A thread that dies, or does not answer within `timeoutMs`, rejects what it held (the
 * caller's job fails and is retried) and is replaced; one that keeps dying before it is ready is
 * replaced after a growing pause, and while no thread is up, calls are rejected at once.
 */
export function createVerificationPool(roots: readonly LoadedTrustedRoot[], keys: readonly TrustedKey[], options: PoolOptions = {}): VerificationPool {
  const fastPath = options.fastPath ?? true;
  let data = workerData(roots, keys, fastPath);
  const size = Math.max(1, options.size ?? availableParallelism());
  const timeoutMs = options.timeoutMs ?? 60_000;
  const script = options.script ?? new URL('./pool-worker.ts', import.meta.url);
  let nextId = 0;
  let closed = false;
  const slots: Slot[] = [];

  const start = (s: Slot): void => {
    const worker = new Worker(script, { workerData: data });
    s.worker = worker;
    s.up = true;
    let ready = false;
    worker.on('message', (m: PoolResponse) => {
      if ('ready' in m) {
        ready = true;
        s.failedStarts = 0;
        return;
      }
      const p = s.pending.get(m.id);
      if (p === undefined) {
        return;
      }
      s.pending.delete(m.id);
      clearTimeout(p.timer);
      if ('verdict' in m) {
        p.resolve(m.verdict);
      } else {
        p.reject(new Error(`verification thread failed: ${m.error}`));
      }
    });
    let failed = false;
    s.fail = (err: Error) => {
      if (failed) {
        return;
      }
      failed = true;
      for (const p of s.pending.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      s.pending.clear();
      void worker.terminate();
      if (closed) {
        return;
      }
      s.failedStarts = ready ? 0 : s.failedStarts + 1;
      const delay = restartDelayMs(s.failedStarts);
      if (delay === 0) {
        start(s);
        return;
      }
      s.up = false;
      setTimeout(() => {
        if (!closed) {
          start(s);
        }
      }, delay).unref();
    };
    const fail = s.fail;
    worker.once('error', (err: Error) => fail(err));
    worker.once('exit', (code) => fail(new Error(`verification thread exited with code ${code}`)));
  };
  for (let i = 0; i < size; i++) {
    const slot: Slot = { worker: undefined as unknown as Worker, pending: new Map(), fail: () => undefined, failedStarts: 0, up: true };
    start(slot);
    slots.push(slot);
  }

  const call = (method: PoolMethod, args: readonly unknown[]): Promise<SignatureVerdict> => {
    if (closed) {
      return Promise.reject(new Error('the verification pool is closed'));
    }
    const up = slots.filter((s) => s.up);
    if (up.length === 0) {
      return Promise.reject(new Error('no verification thread is running (they keep failing to start)'));
    }
    const slot = up.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const fail = slot.fail;
      // Only this thread's failer: a timer outliving its thread does nothing to the replacement.
      const timer = setTimeout(() => fail(new Error(`verification thread did not answer within ${timeoutMs} ms; replaced`)), timeoutMs);
      timer.unref();
      slot.pending.set(id, { resolve, reject, timer });
      slot.worker.postMessage({ id, method, args } satisfies PoolMessage);
    });
  };
  return {
    size,
    verifyCosignLayer: (layer, subject, expected) => call('verifyCosignLayer', [layer, subject, expected]),
    verifyCosignAttestation: (layer, subject, expected) => call('verifyCosignAttestation', [layer, subject, expected]),
    verifyBundle: (bundle, subject, expected) => call('verifyBundle', [bundle, subject, expected]),
    setTrust(nextRoots, nextKeys) {
      data = workerData(nextRoots, nextKeys, fastPath);
      for (const s of slots) {
        s.worker.postMessage({ trust: data } satisfies PoolMessage);
      }
    },
    close: async () => {
      closed = true;
      await Promise.all(
        slots.map(async (s) => {
          const worker = s.worker;
          await worker.terminate();
          for (const p of s.pending.values()) {
            clearTimeout(p.timer);
            p.reject(new Error('the verification pool is closed'));
          }
          s.pending.clear();
        }),
      );
    },
  };
}
