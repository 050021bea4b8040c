// One thread of the verification pool (pool.ts): builds its verifier from the pool's roots and keys,
// says it is ready, then answers each request with the verdict, in the order they come; a `trust`
// message rebuilds the verifier for the requests after it. Verification never throws; anything that
// does is sent back as an error (the caller's promise rejects).
import { createPublicKey } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import type { Digest } from '../../common/domain/digest.ts';
import type { PoolMessage, PoolRequest, PoolResponse, PoolWorkerData } from './pool.ts';
import { createSignatureVerifier, type BundleSubject, type ExpectedIdentity, type SignatureVerifier } from './verifier.ts';

/** The verifier of `data`, or why it cannot be built (every request is then answered with that). */
function build(data: PoolWorkerData): SignatureVerifier | Error {
  try {
    return createSignatureVerifier(
      data.roots.map((r) => ({ root: TrustedRoot.fromJSON(r.json), version: r.version, path: r.path })),
      data.keys.map((k) => ({ name: k.name, fingerprint: k.fingerprint, key: createPublicKey(k.pem) })),
      { fastPath: data.fastPath },
    );
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

let verifier = build(workerData as PoolWorkerData);

/** Structured clone turns a Buffer into a plain Uint8Array: give the verifier Buffers back. */
const buffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function answer(req: PoolRequest): PoolResponse {
  try {
    if (verifier instanceof Error) {
      return { id: req.id, error: `no verifier: ${verifier.message}` };
    }
    const [input, subject, expected] = req.args as [unknown, unknown, ExpectedIdentity | undefined];
    switch (req.method) {
      case 'verifyCosignLayer':
      case 'verifyCosignAttestation': {
        const layer = input as { payload: Uint8Array; annotations: Record<string, string> };
        return { id: req.id, verdict: verifier[req.method]({ payload: buffer(layer.payload), annotations: layer.annotations }, subject as Digest, expected) };
      }
      case 'verifyBundle': {
        const s = subject as { digest: BundleSubject['digest']; bytes?: Uint8Array };
        const bundleSubject: BundleSubject = s.bytes === undefined ? { digest: s.digest } : { digest: s.digest, bytes: buffer(s.bytes) };
        return { id: req.id, verdict: verifier.verifyBundle(input as Uint8Array, bundleSubject, expected) };
      }
    }
  } catch (err) {
    return { id: req.id, error: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on('message', (m: PoolMessage) => {
  if ('trust' in m) {
    verifier = build(m.trust);
    return;
  }
  parentPort?.postMessage(answer(m));
});
parentPort?.postMessage({ ready: true } satisfies PoolResponse);
