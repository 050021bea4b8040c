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

export type PoolResponse = { readonly id: number; readonly verdict: SignatureVerdict } | { readonly id: number; readonly error: string };

/** `SignatureVerifier`'s checks on worker threads: the same verdicts, off the calling thread. */
export interface VerificationPool {
  readonly size: number;
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): Promise<SignatureVerdict>;
  /** Stops the threads; what is still in flight is rejected. */
  close(): Promise<void>;
}

interface Slot {
  worker: Worker;
  readonly pending: Map<number, { resolve: (v: SignatureVerdict) => void; reject: (e: Error) => void }>;
}

/**
 * A fixed set of worker threads (one per core by default), each with its own verifier built from
 * the same roots and keys as `createSignatureVerifier` would: verification is pure CPU work,
 * so one process verifies on every core. Each request goes to the thread with the fewest in
 * flight. A thread that dies rejects what it held and is replaced.
 */
export function createVerificationPool(
  roots: readonly LoadedTrustedRoot[],
  keys: readonly TrustedKey[],
  options: { readonly size?: number; readonly fastPath?: boolean } = {},
): VerificationPool {
  const data: PoolWorkerData = {
    roots: roots.map((r) => ({ json: TrustedRoot.toJSON(r.root), version: r.version, path: r.path })),
    keys: keys.map((k) => ({ name: k.name, fingerprint: k.fingerprint, pem: k.key.export({ type: 'spki', format: 'pem' }).toString() })),
    fastPath: options.fastPath ?? true,
  };
  const size = Math.max(1, options.size ?? availableParallelism());
  let nextId = 0;
  let closed = false;
  const slots: Slot[] = [];
  const spawn = (slot?: Slot): Slot => {
    const worker = new Worker(new URL('./pool-worker.ts', import.meta.url), { workerData: data });
    const s: Slot = slot ?? { worker, pending: new Map() };
    s.worker = worker;
    worker.on('message', (m: PoolResponse) => {
      const p = s.pending.get(m.id);
      s.pending.delete(m.id);
      if ('verdict' in m) {
        p?.resolve(m.verdict);
      } else {
        p?.reject(new Error(`verification thread failed: ${m.error}`));
      }
    });
    const fail = (err: Error) => {
      for (const p of s.pending.values()) {
        p.reject(err);
      }
      s.pending.clear();
      if (!closed) {
        spawn(s);
      }
    };
    worker.once('error', fail);
    worker.once('exit', (code) => {
      if (s.worker === worker) {
        fail(new Error(`verification thread exited with code ${code}`));
      }
    });
    return s;
  };
  for (let i = 0; i < size; i++) {
    slots.push(spawn());
  }
  const call = (method: PoolMethod, args: readonly unknown[]): Promise<SignatureVerdict> => {
    if (closed) {
      return Promise.reject(new Error('the verification pool is closed'));
    }
    const slot = slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, method, args } satisfies PoolRequest);
    });
  };
  return {
    size,
    verifyCosignLayer: (layer, subject, expected) => call('verifyCosignLayer', [layer, subject, expected]),
    verifyCosignAttestation: (layer, subject, expected) => call('verifyCosignAttestation', [layer, subject, expected]),
    verifyBundle: (bundle, subject, expected) => call('verifyBundle', [bundle, subject, expected]),
    close: async () => {
      closed = true;
      await Promise.all(
        slots.map(async (s) => {
          const worker = s.worker;
          await worker.terminate();
          for (const p of s.pending.values()) {
            p.reject(new Error('the verification pool is closed'));
          }
          s.pending.clear();
        }),
      );
    },
  };
}

