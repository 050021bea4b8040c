import { LRUCache } from 'lru-cache';
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

/** Entries a store keeps by default (SIGNET_DECISION_TABLE_MAX): ~250 bytes each, ~0.5 GiB with tags. */
export const DEFAULT_MAX_ENTRIES = 2_000_000;

/**
 * What one API process holds in memory: decisions under the current policy and tags, each up to
 * `maxEntries`. Nothing here does I/O; the ledger feed fills it and lookups read it.
 *
 * Bounded, least recently used first: an entry is used when admission asks for it (a hit) and
 * when it changes (an event, a miss answered from Postgres), so what stays is what admission asks
 * for and what changed recently. What is dropped is answered from Postgres again on its next ask.
 * Decisions are kept by `registry/repository` + the digest's 32 raw bytes as a latin1 string (a
 * flat key instead of a ~110-character `registry/repo@sha256:<hex>` one).
 */
export class DecisionStore {
  #entries: LRUCache<string, Entry>;
  readonly #tags: LRUCache<string, Digest>;
  /** Identical decisions (same reason, message, signers, rule) are stored once. */
  #interned = new Map<string, Decision>();
  readonly maxEntries: number;

  constructor(maxEntries = DEFAULT_MAX_ENTRIES) {
    this.maxEntries = maxEntries;
    this.#entries = new LRUCache({ max: maxEntries });
    this.#tags = new LRUCache({ max: maxEntries });
  }

  /** Decisions held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Tags held. */
  get tagCount(): number {
    return this.#tags.size;
  }

  /** Epoch ms of the oldest verification among the entries (a full scan: for scrapes, not the hot path). */
  oldestVerifiedAt(): number | null {
    let oldest: number | null = null;
    for (const e of this.#entries.values()) {
      if (e.verifiedAt > 0 && (oldest === null || e.verifiedAt < oldest)) {
        oldest = e.verifiedAt;
      }
    }
    return oldest;
  }

  get(registry: string, repository: string, digest: Digest): Entry | undefined {
    return this.getByKey(repositoryKey(registry, repository), rawDigest(digest));
  }

  /** The hot path's lookup, with both keys computed once per reference string by the caller; marks the entry used. */
  getByKey(repository: string, raw: string): Entry | undefined {
    return this.#entries.get(`${repository}\0${raw}`);
  }

  /** Whether the entry is held, without marking it used (a load must not count as admission asking). */
  peek(registry: string, repository: string, digest: Digest): Entry | undefined {
    return this.#entries.peek(`${repositoryKey(registry, repository)}\0${rawDigest(digest)}`);
  }

  set(registry: string, repository: string, digest: Digest, entry: Entry): void {
    this.#entries.set(`${repositoryKey(registry, repository)}\0${rawDigest(digest)}`, entry);
  }

  /**
   * Takes the decisions of `other` (loaded aside, under a new policy) in place of its own, at
   * once: a lookup sees either every old decision or every new one. Tags stay; `other` is left empty.
   */
  adoptDecisions(other: DecisionStore): void {
    this.#entries = other.#entries;
    this.#interned = other.#interned;
    other.#entries = new LRUCache({ max: other.maxEntries });
    other.#interned = new Map();
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
