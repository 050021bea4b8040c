import type { KeyObject, X509Certificate } from 'node:crypto';
import { toTrustMaterial, Verifier, type SignedEntity, type Signer } from '@sigstore/verify';
import { sha256Hex } from './cosign-layer.ts';
import { FastCertificateStep, type FastPathStats } from './fast-certificate.ts';
import { classify, Failure } from './failure.ts';
import type { LoadedTrustedRoot } from './trust.ts';

type Thresholds = { tlogThreshold: number; ctlogThreshold: number; timestampThreshold: number };

interface Root {
  readonly loaded: LoadedTrustedRoot;
  readonly verifier: Verifier;
  readonly options: Thresholds;
  readonly fast: FastCertificateStep | null;
}

/** The step of `Verifier.verify` the fast path takes over: sigstore-js declares it private. */
type SigningKeyStep = (entity: Pick<SignedEntity, 'key'>, timestamps: Date[]) => Signer;

/** `sha256` of the only root's file, or of every root's version in order when there are several. */
export function trustSetVersion(roots: readonly Pick<LoadedTrustedRoot, 'version'>[]): string {
  if (roots.length === 1) {
    return roots[0]!.version;
  }
  return `sha256:${sha256Hex(Buffer.from(roots.map((r) => r.version).join('\n')))}`;
}

/**
 * The trusted roots, each with its `@sigstore/verify` verifier, tried in order: the first that
 * verifies wins, else the most telling failure is thrown.
 */
export class TrustedRoots {
  /** {@link trustSetVersion} of the roots: recorded on signatures that no root verified. */
  readonly version: string;
  readonly #roots: readonly Root[];

  /**
   * With `fastPath` (the default), each root's keyless certificate step runs through
   * {@link FastCertificateStep}, which leaves to sigstore-js whatever it is not sure of; without
   * it, sigstore-js does everything (the reference the differential tests compare against).
   */
  constructor(loaded: readonly LoadedTrustedRoot[], fastPath = true) {
    if (loaded.length === 0) {
      throw new Error('at least one trusted root is required');
    }
    this.#roots = loaded.map((l) => {
      // A root without transparency or CT logs (GitHub's instance) proves time with a TSA alone.
      const options = {
        tlogThreshold: l.root.tlogs.length > 0 ? 1 : 0,
        ctlogThreshold: l.root.ctlogs.length > 0 ? 1 : 0,
        timestampThreshold: 1,
      };
      const material = toTrustMaterial(l.root);
      const verifier = new Verifier(material, options);
      const fast = fastPath ? withFastCertificates(verifier, new FastCertificateStep(material, options.ctlogThreshold)) : null;
      return { loaded: l, verifier, options, fast };
    });
    this.version = trustSetVersion(loaded);
  }

  /** How often the fast certificate step answered and how often sigstore-js did; null without the fast path. */
  get fastPathStats(): FastPathStats | null {
    const steps = this.#roots.flatMap((r) => (r.fast === null ? [] : [r.fast.stats]));
    return steps.length === 0 ? null : steps.reduce((a, s) => ({ hits: a.hits + s.hits, fallbacks: a.fallbacks + s.fallbacks }), { hits: 0, fallbacks: 0 });
  }

  /**
   * Keyless: the certificate chain, SCT, log entries, timestamps and signature, by sigstore.
   * `leaf` is the caller's node:crypto parse of the signing certificate.
   */
  verifyCertificate(entity: SignedEntity, leaf: X509Certificate): { signer: Signer; root: LoadedTrustedRoot } {
    try {
      return this.#first((r) => (r.fast === null ? r.verifier.verify(entity) : r.fast.withLeaf(leaf, () => r.verifier.verify(entity))));
    } catch (err) {
      const { outcome, reason } = classify(err);
      if (outcome === 'untrusted_root') {
        throw new Failure('untrusted_root', this.#untrusted(leaf, reason));
      }
      throw err;
    }
  }

  /** Which CA issued the certificate and where trust is configured: what an operator needs to act. */
  #untrusted(leaf: X509Certificate, sigstoreReason: string): string {
    const issuer = JSON.stringify(leaf.issuer.split('\n').join(', '));
    const paths = this.#roots.map((r) => r.loaded.path).join(', ');
    return `the certificate was issued by ${issuer}, which chains to none of the trusted roots (SIGNET_TRUSTED_ROOT: ${paths}); if that CA is yours, add its trusted_root.json to SIGNET_TRUSTED_ROOT (${sigstoreReason})`;
  }

  /**
   * Key-based: the entity's log entries and timestamps against the root, and the signature with
   * `key`. Returns the root that verified.
   */
  verifyWithKey(entity: SignedEntity, key: KeyObject): LoadedTrustedRoot {
    return this.#first((r) => verifyWithKey(r, entity, key)).root;
  }

  /** Runs `attempt` against each root; the first that verifies wins, else the most telling failure. */
  #first(attempt: (root: Root) => Signer): { signer: Signer; root: LoadedTrustedRoot } {
    const failures: unknown[] = [];
    for (const root of this.#roots) {
      try {
        return { signer: attempt(root), root: root.loaded };
      } catch (err) {
        failures.push(err);
      }
    }
    throw failures.find((f) => classify(f).outcome !== 'untrusted_root') ?? failures[0];
  }
}

/**
 * Routes `verifier`'s certificate step through `fast`: every other step (timestamps, log entries,
 * signature, thresholds) stays sigstore-js's own, and so does the certificate step whenever the
 * fast one is not sure. Null when this sigstore-js has no such step to route (then it does all).
 */
function withFastCertificates(verifier: Verifier, fast: FastCertificateStep): FastCertificateStep | null {
  const target = verifier as unknown as { verifySigningKey?: SigningKeyStep };
  const original = target.verifySigningKey;
  if (typeof original !== 'function') {
    return null;
  }
  const reference = original.bind(verifier);
  target.verifySigningKey = (entity, timestamps) =>
    (entity.key.$case === 'certificate' ? fast.signer(entity.key.certificate, timestamps) : null) ?? reference(entity, timestamps);
  return fast;
}

function verifyWithKey(root: Root, entity: SignedEntity, key: KeyObject): Signer {
  // The key finder ignores the hint: the key was already chosen (trusted, or the one Rekor logged).
  const material = toTrustMaterial(root.loaded.root, () => ({ publicKey: key, validFor: () => true }));
  const tlog = entity.tlogEntries.length > 0;
  return new Verifier(material, {
    ...root.options,
    ctlogThreshold: 0,
    tlogThreshold: tlog ? 1 : 0,
    timestampThreshold: tlog || entity.timestamps.length > 0 ? 1 : 0,
  }).verify(entity);
}
