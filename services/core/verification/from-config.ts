import type { Config } from '../../common/config.ts';
import type { Digest } from '../../common/domain/digest.ts';
import type { SignatureVerdict } from '../../common/domain/signature.ts';
import type { Policy } from '../../common/policy/policy.ts';
import type { CosignLayer } from './cosign-layer.ts';
import { createVerificationPool, type VerificationPool } from './pool.ts';
import { loadTrustedKeys, loadTrustedRoots, policyKeys, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';
import { createSignatureVerifier, type BundleSubject, type ExpectedIdentity, type SignatureChecks, type SignatureVerifier } from './verifier.ts';

/** The trust material configured on disk: the trusted root files and the keys directory. */
export interface ConfiguredTrust {
  readonly roots: readonly LoadedTrustedRoot[];
  readonly keys: readonly TrustedKey[];
}

export async function loadConfiguredTrust(config: Config): Promise<ConfiguredTrust> {
  const [roots, keys] = await Promise.all([
    loadTrustedRoots(config.verification.trustedRootPaths),
    loadTrustedKeys(config.verification.trustedKeysDir),
  ]);
  return { roots, keys };
}

export interface ConfiguredVerifierOptions {
  /**
   * Threads of a verification pool (`pool.ts`) that {@link ConfiguredVerifier.checks} verifies on;
   * 0 (the default) verifies on the calling thread.
   */
  readonly threads?: number;
}

/**
 * The verifier of the configured trust, rebuilt when what it trusts changes:
 * - the keys a policy names are trusted too (the policy decides what they may sign), so a new
 *   policy rebuilds it;
 * - a root refreshed over TUF is tried before the files, which stay as the fallback.
 * Callers hold this one object; each call goes to the verifier of the moment, and `version` changes
 * with it, so the verification cache never reuses a verdict across trust configurations.
 *
 * Its own methods verify on the calling thread (the CLI's way). `checks` is how the worker verifies:
 * on the pool's threads when `threads` > 0 — the same trust, handed to every thread whenever it
 * changes, before any request made after the change — else on the calling thread.
 */
export class ConfiguredVerifier implements SignatureVerifier {
  readonly #trust: ConfiguredTrust;
  #policy: Policy;
  #tufRoot: LoadedTrustedRoot | null = null;
  #current: SignatureVerifier;
  readonly #pool: VerificationPool | null;
  /** The checks the worker awaits: the pool's, or this verifier's own. */
  readonly checks: SignatureChecks;

  constructor(trust: ConfiguredTrust, policy: Policy, options: ConfiguredVerifierOptions = {}) {
    this.#trust = trust;
    this.#policy = policy;
    this.#current = this.#build();
    const threads = options.threads ?? 0;
    this.#pool = threads > 0 ? createVerificationPool(this.loadedRoots(), this.#keys(), { size: threads }) : null;
    this.checks = this.#pool === null ? this : pooledChecks(this, this.#pool);
  }

  /** The keys this verifier trusts beyond the files: those `policy` names. */
  setPolicy(policy: Policy): void {
    this.#policy = policy;
    this.#rebuild();
  }

  /** A root fetched over TUF, tried first from now on. */
  setTufRoot(root: LoadedTrustedRoot): void {
    this.#tufRoot = root;
    this.#rebuild();
  }

  /** How many keys are trusted now (files and policy). */
  get keyCount(): number {
    return this.#trust.keys.length + policyKeys(this.#policy).length;
  }

  /** Verification threads `checks` uses; 0: the calling thread. */
  get threads(): number {
    return this.#pool?.size ?? 0;
  }

  get version(): string {
    return this.#current.version;
  }

  get trustRootVersion(): string {
    return this.#current.trustRootVersion;
  }

  get roots(): SignatureVerifier['roots'] {
    return this.#current.roots;
  }

  /** Of the verifications on the calling thread only (the pool's threads keep their own). */
  get fastPathStats(): SignatureVerifier['fastPathStats'] {
    return this.#current.fastPathStats;
  }

  /** The trusted roots in force, in the order they are tried (a TUF-refreshed one first). */
  loadedRoots(): readonly LoadedTrustedRoot[] {
    const tuf = this.#tufRoot;
    return tuf === null ? this.#trust.roots : [tuf, ...this.#trust.roots.filter((r) => r.version !== tuf.version)];
  }

  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#current.verifyCosignLayer(layer, subject, expected);
  }

  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#current.verifyCosignAttestation(layer, subject, expected);
  }

  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): SignatureVerdict {
    return this.#current.verifyBundle(bundle, subject, expected);
  }

  /** Stops the pool's threads (what they still hold is rejected); nothing to stop without one. */
  async close(): Promise<void> {
    await this.#pool?.close();
  }

  #keys(): TrustedKey[] {
    return [...this.#trust.keys, ...policyKeys(this.#policy)];
  }

  #build(): SignatureVerifier {
    return createSignatureVerifier([...this.loadedRoots()], this.#keys());
  }

  #rebuild(): void {
    this.#current = this.#build();
    this.#pool?.setTrust(this.loadedRoots(), this.#keys());
  }
}

/** `verifier`'s checks made on `pool`'s threads; the version is the verifier's, whose trust the pool holds. */
function pooledChecks(verifier: ConfiguredVerifier, pool: VerificationPool): SignatureChecks {
  return {
    get version() {
      return verifier.version;
    },
    get trustRootVersion() {
      return verifier.trustRootVersion;
    },
    verifyCosignLayer: (layer, subject, expected) => pool.verifyCosignLayer(layer, subject, expected),
    verifyCosignAttestation: (layer, subject, expected) => pool.verifyCosignAttestation(layer, subject, expected),
    verifyBundle: (bundle, subject, expected) => pool.verifyBundle(bundle, subject, expected),
  };
}

/**
 * The one way worker, CLI and tools build a verifier: the configured roots and keys, plus the keys
 * `policy` names; `options.threads` for the worker's pool.
 */
export async function createVerifierFromConfig(config: Config, policy: Policy, options: ConfiguredVerifierOptions = {}): Promise<ConfiguredVerifier> {
  return new ConfiguredVerifier(await loadConfiguredTrust(config), policy, options);
}
