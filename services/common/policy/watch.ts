import { unwatchFile, watchFile } from 'node:fs';
import type { Logger } from '../logger.ts';
import { loadPolicy, type LoadedPolicy } from './load.ts';
import type { Policy } from './policy.ts';

/**
 * The policy in force, and its reloads. A reload that parses to a new version is handed to every
 * listener (the worker re-decides the ledger, the API switches its decision table); an invalid
 * file is logged and the policy in force stays.
 */
export class PolicyWatcher {
  readonly #path: string | null;
  readonly #log: Logger;
  readonly #listeners: ((next: LoadedPolicy) => Promise<unknown>)[] = [];
  readonly #onFailure: () => void;
  #current: Policy;

  /** `onFailure` is told of every failed reload (counted on `/metrics`). */
  constructor(path: string | null, initial: Policy, log: Logger, onFailure: () => void = () => undefined) {
    this.#path = path;
    this.#current = initial;
    this.#log = log;
    this.#onFailure = onFailure;
  }

  get current(): Policy {
    return this.#current;
  }

  onChange(listener: (next: LoadedPolicy) => Promise<unknown>): void {
    this.#listeners.push(listener);
  }

  /** Re-reads the file; resolves to the version in force afterwards. Never throws. */
  async reload(): Promise<string> {
    try {
      const next = await loadPolicy(this.#path);
      if (next.policy.version !== this.#current.version) {
        this.#log.info({ from: this.#current.version, to: next.policy.version }, 'policy changed');
        for (const warning of next.warnings ?? []) {
          this.#log.warn({ policy: this.#path }, warning);
        }
        this.#current = next.policy;
        await Promise.all(this.#listeners.map((apply) => apply(next)));
      }
    } catch (err) {
      this.#onFailure();
      this.#log.error({ err }, 'policy reload failed; keeping the policy in force');
    }
    return this.#current.version;
  }

  /**
   * Reloads when the file changes. Polling survives the atomic symlink swaps Kubernetes uses for
   * mounted ConfigMaps. Returns the function that stops watching (a no-op without a file).
   */
  watch(intervalMs = 1_000): () => void {
    const path = this.#path;
    if (path === null) {
      return () => undefined;
    }
    watchFile(path, { interval: intervalMs }, () => void this.reload());
    return () => unwatchFile(path);
  }
}
