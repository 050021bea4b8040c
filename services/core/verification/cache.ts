import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { SignatureVerdict } from '../../common/domain/signature.ts';
import type { BundleSubject, SignatureChecks } from './verifier.ts';

export interface VerificationCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
}

/** Checks behind the cache: a hit is answered at once, a miss as the checks answer it. */
export interface CachingChecks extends SignatureChecks {
  stats(): VerificationCacheStats;
}

/**
 * Remembers verdicts by (signature material, subject, trust configuration): the same signature on
 * the same image under the same trusted roots and keys is verified once per process. A verdict
 * depends on nothing else — keyless certificates are checked at the signing time the material
 * proves, not at "now" — so a hit is exact. The key includes `verifier.version`, which changes when
 * roots or keys do (a policy naming a new key), so old verdicts are never reused across them.
 *
 * Over checks that answer later (the verification pool), a verdict is kept once it arrives, and
 * the same signature asked for again meanwhile waits for that one answer rather than being
 * verified twice; a failure (a thread that died) is not kept. Over a verifier that answers at once,
 * every answer is at once.
 */
export function createCachingVerifier(verifier: SignatureChecks, max = 10_000): CachingChecks {
  const cache = new LRUCache<string, SignatureVerdict>({ max });
  const inFlight = new Map<string, Promise<SignatureVerdict>>();
  let hits = 0;
  let misses = 0;
  const cached = (parts: readonly (string | Uint8Array)[], verify: () => SignatureVerdict | Promise<SignatureVerdict>): SignatureVerdict | Promise<SignatureVerdict> => {
    const h = createHash('sha256').update(verifier.version);
    for (const p of parts) {
      // Length-prefixed, so no two part lists hash alike.
      h.update(String(p.length)).update(':').update(p);
    }
    const key = h.digest('base64');
    const hit = cache.get(key) ?? inFlight.get(key);
    if (hit !== undefined) {
      hits++;
      return hit;
    }
    misses++;
    const verdict = verify();
    if (!(verdict instanceof Promise)) {
      cache.set(key, verdict);
      return verdict;
    }
    const settled = verdict.then(
      (v) => {
        inFlight.delete(key);
        cache.set(key, v);
        return v;
      },
      (err: unknown) => {
        inFlight.delete(key);
        throw err;
      },
    );
    inFlight.set(key, settled);
    return settled;
  };
  const layerParts = (kind: string, payload: Buffer, annotations: Readonly<Record<string, string>>, subject: string) => [
    kind,
    payload,
    JSON.stringify(Object.entries(annotations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    subject,
  ];
  return {
    get version() {
      return verifier.version;
    },
    get trustRootVersion() {
      return verifier.trustRootVersion;
    },
    verifyCosignLayer: (layer, subject, expected) =>
      expected !== undefined
        ? verifier.verifyCosignLayer(layer, subject, expected)
        : cached(layerParts('sig', layer.payload, layer.annotations, subject), () => verifier.verifyCosignLayer(layer, subject)),
    verifyCosignAttestation: (layer, subject, expected) =>
      expected !== undefined
        ? verifier.verifyCosignAttestation(layer, subject, expected)
        : cached(layerParts('att', layer.payload, layer.annotations, subject), () => verifier.verifyCosignAttestation(layer, subject)),
    verifyBundle: (bundle: Uint8Array, subject: BundleSubject, expected) =>
      expected !== undefined
        ? verifier.verifyBundle(bundle, subject, expected)
        : cached(['bundle', bundle, subject.digest, subject.bytes ?? ''], () => verifier.verifyBundle(bundle, subject)),
    stats: () => ({ hits, misses, size: cache.size }),
  };
}
