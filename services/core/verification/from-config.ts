import type { Config } from '../../common/config.ts';
import type { Digest } from '../../common/domain/digest.ts';
import type { SignatureVerdict } from '../../common/domain/signature.ts';
import type { Policy } from '../../common/policy/policy.ts';
import type { CosignLayer } from './cosign-layer.ts';
import { loadTrustedKeys, loadTrustedRoots, policyKeys, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';
import { createSignatureVerifier, type BundleSubject, type ExpectedIdentity, type SignatureVerifier } from './verifier.ts';

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

/**
 * The verifier of the configured trust, rebuilt when what it trusts changes:
 * - the keys a policy names are trusted too (the policy decides what they may sign), so a new
 *   policy rebuilds it;
 * - a root refreshed over TUF is tried before the files, which stay as the fallback.
 * Callers hold this one object; each call goes to the verifier of the moment, and `version` changes
 * with it, so the verification cache never reuses a verdict across trust configurations.
 */
export class ConfiguredVerifier implements SignatureVerifier {
  readonly #trust: ConfiguredTrust;
  #policy: Policy;
  #tufRoot: LoadedTrustedRoot | null = null;
  #current: SignatureVerifier;

  constructor(trust: ConfiguredTrust, policy: Policy) {
    this.#trust = trust;
    this.#policy = policy;
    this.#current = this.#build();
  }

  /** The keys this verifier trusts beyond the files: those `policy` names. */
  setPolicy(policy: Policy): void {
    this.#policy = policy;
    this.#current = this.#build();
  }

  /** A root fetched over TUF, tried first from now on. */
  setTufRoot(root: LoadedTrustedRoot): void {
    this.#tufRoot = root;
    this.#current = this.#build();
  }

  /** How many keys are trusted now (files and policy). */
  get keyCount(): number {
    return this.#trust.keys.length + policyKeys(this.#policy).length;
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

  #build(): SignatureVerifier {
    return createSignatureVerifier([...this.loadedRoots()], [...this.#trust.keys, ...policyKeys(this.#policy)]);
  }
}

/**
 * The one way worker, CLI and tools build a verifier: the configured roots and keys, plus the keys
 * `policy` names.
 */
export async function createVerifierFromConfig(config: Config, policy: Policy): Promise<ConfiguredVerifier> {
  return new ConfiguredVerifier(await loadConfiguredTrust(config), policy);
}
