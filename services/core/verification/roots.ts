import type { KeyObject } from 'node:crypto';
import { toTrustMaterial, Verifier, type SignedEntity, type Signer } from '@sigstore/verify';
import { sha256Hex } from './cosign-layer.ts';
import { classify } from './failure.ts';
import type { LoadedTrustedRoot } from './trust.ts';

type Thresholds = { tlogThreshold: number; ctlogThreshold: number; timestampThreshold: number };

interface Root {
  readonly loaded: LoadedTrustedRoot;
  readonly verifier: Verifier;
  readonly options: Thresholds;
}

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

  constructor(loaded: readonly LoadedTrustedRoot[]) {
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
      return { loaded: l, verifier: new Verifier(toTrustMaterial(l.root), options), options };
    });
    this.version = trustSetVersion(loaded);
  }

  /** Keyless: the certificate chain, SCT, log entries, timestamps and signature, by sigstore. */
  verifyCertificate(entity: SignedEntity): { signer: Signer; root: LoadedTrustedRoot } {
    return this.#first((r) => r.verifier.verify(entity));
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
