import type { Digest } from '../../common/domain/digest.ts';
import type { Decision } from '../../common/domain/decision.ts';

/** One image's decision. `decision` is shared between every image decided alike (interned). */
export interface Entry {
  readonly decision: Decision;
  /** Epoch milliseconds: a number costs less memory than the ISO string, 1M times over. */
  readonly verifiedAt: number;
  /** Epoch milliseconds after which the decision no longer holds by time alone (attestation conditions); absent when it never expires. */
  readonly expiresAt?: number;
}

/**
 * What one API process holds in memory: every decision under the current policy and every tag.
 * Nothing here does I/O; the ledger feed fills it and lookups read it.
 *
 * Decisions are kept by (registry/repository, digest), one inner map per repository keyed by the
 * digest's 32 raw bytes as a latin1 string — a flat 32-character key instead of a ~110-character
 * `registry/repo@sha256:<hex>` one for every entry (356 → under 200 bytes per entry at 1M).
 */
export class DecisionStore {
  readonly #repositories = new Map<string, Map<string, Entry>>();
  #size = 0;
  readonly #tags = new Map<string, Digest>();
  /** Identical decisions (same reason, message, signers, rule) are stored once. */
  readonly #interned = new Map<string, Decision>();

  /** Decisions held. */
  get size(): number {
    return this.#size;
  }

  /** Tags held. */
  get tagCount(): number {
    return this.#tags.size;
  }

  /** Epoch ms of the oldest verification among the entries (a full scan: for scrapes, not the hot path). */
  oldestVerifiedAt(): number | null {
    let oldest: number | null = null;
    for (const entries of this.#repositories.values()) {
      for (const e of entries.values()) {
        if (e.verifiedAt > 0 && (oldest === null || e.verifiedAt < oldest)) {
          oldest = e.verifiedAt;
        }
      }
    }
    return oldest;
  }

  get(registry: string, repository: string, digest: Digest): Entry | undefined {
    return this.getByKey(repositoryKey(registry, repository), rawDigest(digest));
  }

  /** The hot path's lookup, with both keys computed once per reference string by the caller. */
  getByKey(repository: string, raw: string): Entry | undefined {
    return this.#repositories.get(repository)?.get(raw);
  }

  set(registry: string, repository: string, digest: Digest, entry: Entry): void {
    const k = repositoryKey(registry, repository);
    let entries = this.#repositories.get(k);
    if (entries === undefined) {
      entries = new Map();
      this.#repositories.set(k, entries);
    }
    const before = entries.size;
    entries.set(rawDigest(digest), entry);
    this.#size += entries.size - before;
  }

  /** Forgets every decision (a new policy); tags stay. */
  clearDecisions(): void {
    this.#repositories.clear();
    this.#size = 0;
    this.#interned.clear();
  }

  tag(registry: string, repository: string, tag: string): Digest | undefined {
    return this.#tags.get(tagKey(registry, repository, tag));
  }

  setTag(registry: string, repository: string, tag: string, digest: Digest): void {
    this.#tags.set(tagKey(registry, repository, tag), digest);
  }

  /** The entry for `d`, sharing its decision with every identical one already held. */
  entry(d: Decision, verifiedAt: Date | string): Entry {
    const decision: Decision = {
      allowed: d.allowed,
      reason: d.reason,
      message: d.message,
      signers: d.signers,
      policyVersion: d.policyVersion,
      rule: d.rule,
      mode: d.mode,
      ...(d.scoped === undefined ? {} : { scoped: withoutAttestations(d.scoped) }),
    };
    const k = JSON.stringify(decision);
    let shared = this.#interned.get(k);
    if (shared === undefined) {
      shared = decision;
      this.#interned.set(k, shared);
    }
    const at = typeof verifiedAt === 'string' ? Date.parse(verifiedAt) : verifiedAt.getTime();
    // Kept beside the shared decision, not in it: expiries differ from image to image.
    return d.expiresAt === undefined || d.expiresAt === null ? { decision: shared, verifiedAt: at } : { decision: shared, verifiedAt: at, expiresAt: Date.parse(d.expiresAt) };
  }
}

/**
 * Scoped variants as the table keeps them: per-requirement attestation results stay in Postgres
 * and GraphQL, as they do for the decision everywhere else (answers never carry them).
 */
function withoutAttestations(scoped: NonNullable<Decision['scoped']>): NonNullable<Decision['scoped']> {
  if (Object.values(scoped).every((v) => v.attestations === undefined)) {
    return scoped;
  }
  return Object.fromEntries(Object.entries(scoped).map(([name, { attestations: _, ...v }]) => [name, v]));
}

/** `sha256:<64 hex>` → its 32 bytes as a (flat, one-byte) string: the store's key within a repository. */
export function rawDigest(digest: Digest): string {
  return Buffer.from(digest.slice(7), 'hex').toString('latin1');
}

/** The store's key for a repository. */
export function repositoryKey(registry: string, repository: string): string {
  return `${registry}/${repository}`;
}

function tagKey(registry: string, repository: string, tag: string): string {
  return `${registry}/${repository}:${tag}`;
}
