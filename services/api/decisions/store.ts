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

/** Entries a store keeps by default (SIGNET_DECISION_TABLE_MAX): ~180 bytes a decision and up to ~200 a tag, ~0.7 GiB full. */
export const DEFAULT_MAX_ENTRIES = 2_000_000;

/** 2000-01-01T00:00:00Z in epoch seconds: times from 1932 to 2068 are small integers from it. */
const EPOCH_2000_S = 946_684_800;

/** A decision and the repository (`registry/repository`) it was made for: one object for every image of that repository decided alike. */
interface Made {
  readonly decision: Decision;
  readonly repository: string;
}

/** An entry as held: the store is keyed by digest alone, so each entry names its repository (through what it shares). */
class Held implements Entry {
  readonly made: Made;
  /**
   * The verification time as two small integers, seconds since 2000 and milliseconds, rather than
   * one epoch-millisecond number: V8 keeps a small integer in the object, a larger one in a number
   * object of its own (16 bytes more, per entry).
   */
  readonly s: number;
  readonly ms: number;

  constructor(made: Made, verifiedAt: number) {
    this.made = made;
    const s = Math.floor(verifiedAt / 1000);
    this.s = s - EPOCH_2000_S;
    this.ms = verifiedAt - s * 1000;
  }

  get verifiedAt(): number {
    return (this.s + EPOCH_2000_S) * 1000 + this.ms;
  }

  get decision(): Decision {
    return this.made.decision;
  }

  get repository(): string {
    return this.made.repository;
  }
}

/** An entry whose decision lapses (attestation conditions): the few that do carry the field. */
class HeldUntil extends Held {
  readonly expiresAt: number;

  constructor(made: Made, verifiedAt: number, expiresAt: number) {
    super(made, verifiedAt);
    this.expiresAt = expiresAt;
  }
}

/** What the store keeps under a digest: its one repository's entry, or (the digest in several repositories) each one's. */
type Slot = Held | readonly Held[];

/**
 * Interned decisions, repository keys, and decision and repository pairs, kept at most (then
 * forgotten and started again: interning saves memory, it decides nothing). Decisions need the
 * bound too: some messages name the repository (`no policy entry covers …`), so a replica that
 * runs long enough would otherwise hold one per repository it was ever asked about.
 */
export const INTERNED_MAX = 100_000;

/**
 * What one API process holds in memory: decisions under the current policy and tags, each up to
 * `maxEntries`. Nothing here does I/O; the ledger feed fills it and lookups read it.
 *
 * Bounded, least recently used first: an entry is used when admission asks for it (a hit) and
 * when it changes (an event, a miss answered from Postgres), so what stays is what admission asks
 * for and what changed recently. What is dropped is answered from Postgres again on its next ask.
 *
 * Memory per decision is what sizes a replica, so decisions are kept by the digest's 32 raw bytes
 * as a flat one-byte string (48 bytes), and an entry is its verification time and a pointer to
 * what it shares with every image of its repository decided alike (the decision, the repository
 * key): a key concatenated from `registry/repository` and the digest stays a tree of the strings
 * it was made of (~170 bytes a key, measured). A digest pushed to several repositories keeps one
 * entry for each, side by side under its key; the bound counts entries, not digests.
 */
export class DecisionStore {
  #entries: LRUCache<string, Slot>;
  /** How many entries were verified in each hour (epoch hours), kept by the cache as entries come and go. */
  #hours: Map<number, number>;
  readonly #tags: LRUCache<string, Digest>;
  /** Identical decisions (same reason, message, signers, rule) are stored once. */
  #interned = new Map<string, Decision>();
  /** Repository keys seen lately, each held once. */
  readonly #repositories = new Map<string, string>();
  /** The shared part of entries, by decision (interned, so by identity) and repository key. */
  #made = new Map<Decision, Map<string, Made>>();
  #madeCount = 0;
  readonly maxEntries: number;

  constructor(maxEntries = DEFAULT_MAX_ENTRIES) {
    this.maxEntries = maxEntries;
    [this.#entries, this.#hours] = decisionCache(maxEntries);
    this.#tags = new LRUCache({ max: maxEntries });
  }

  /** Decisions held. */
  get size(): number {
    return this.#entries.calculatedSize;
  }

  /** Tags held. */
  get tagCount(): number {
    return this.#tags.size;
  }

  /**
   * Epoch ms of the start of the hour of the oldest verification among the entries (entries with
   * no verification time left out), from per-hour counts the cache keeps: walking a large table
   * instead held the event loop (~0.45 s at 1M entries, on every /metrics scrape).
   */
  oldestVerifiedAt(): number | null {
    let oldest: number | null = null;
    for (const [hour, n] of this.#hours) {
      if (n > 0 && (oldest === null || hour < oldest)) {
        oldest = hour;
      }
    }
    return oldest === null ? null : oldest * HOUR_MS;
  }

  get(registry: string, repository: string, digest: Digest): Entry | undefined {
    return this.getByKey(repositoryKey(registry, repository), rawDigest(digest));
  }

  /** The hot path's lookup, with both keys computed once per reference string by the caller; marks the entry used. */
  getByKey(repository: string, raw: string): Entry | undefined {
    return pick(this.#entries.get(raw), repository);
  }

  /** Whether the entry is held, without marking it used (a load must not count as admission asking). */
  peek(registry: string, repository: string, digest: Digest): Entry | undefined {
    return pick(this.#entries.peek(rawDigest(digest)), repositoryKey(registry, repository));
  }

  set(registry: string, repository: string, digest: Digest, entry: Entry): void {
    const made = this.#shared(entry.decision, repositoryKey(registry, repository));
    const repo = made.repository;
    const held = entry.expiresAt === undefined ? new Held(made, entry.verifiedAt) : new HeldUntil(made, entry.verifiedAt, entry.expiresAt);
    const raw = rawDigest(digest);
    const slot = this.#entries.peek(raw);
    // The digest in another repository as well: the entries side by side, this one replaced if held.
    const next: Slot = slot === undefined || (!isMany(slot) && slot.repository === repo) ? held : [...(isMany(slot) ? slot : [slot]).filter((e) => e.repository !== repo), held];
    this.#entries.set(raw, next);
    // The slot it replaced, or anything evicted for it, was taken off the counts as it went.
    if (this.#entries.peek(raw) === next) {
      countHours(this.#hours, next, 1);
    }
  }

  /** What entries of `decision` in repository `key` share. */
  #shared(decision: Decision, key: string): Made {
    let byRepository = this.#made.get(decision);
    let made = byRepository?.get(key);
    if (made === undefined) {
      if (this.#madeCount >= INTERNED_MAX) {
        this.#made = new Map();
        this.#madeCount = 0;
        byRepository = undefined;
      }
      if (byRepository === undefined) {
        byRepository = new Map();
        this.#made.set(decision, byRepository);
      }
      made = { decision, repository: this.#repository(key) };
      byRepository.set(made.repository, made);
      this.#madeCount++;
    }
    return made;
  }

  /** `key`, the one copy of it held for every entry of that repository. */
  #repository(key: string): string {
    let held = this.#repositories.get(key);
    if (held === undefined) {
      if (this.#repositories.size >= INTERNED_MAX) {
        this.#repositories.clear();
      }
      held = flat(key);
      this.#repositories.set(held, held);
    }
    return held;
  }

  /**
   * Takes the decisions of `other` (loaded aside, under a new policy) in place of its own, at
   * once: a lookup sees either every old decision or every new one. Tags stay; `other` is left empty.
   */
  adoptDecisions(other: DecisionStore): void {
    this.#entries = other.#entries;
    this.#hours = other.#hours;
    this.#interned = other.#interned;
    this.#made = other.#made;
    this.#madeCount = other.#madeCount;
    [other.#entries, other.#hours] = decisionCache(other.maxEntries);
    other.#interned = new Map();
    other.#made = new Map();
    other.#madeCount = 0;
  }

  tag(registry: string, repository: string, tag: string): Digest | undefined {
    return this.#tags.get(tagKey(registry, repository, tag));
  }

  setTag(registry: string, repository: string, tag: string, digest: Digest): void {
    this.#tags.set(flat(tagKey(registry, repository, tag)), digest);
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
      if (this.#interned.size >= INTERNED_MAX) {
        this.#interned.clear();
      }
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

const HOUR_MS = 3_600_000;

/**
 * The decisions' cache: at most `max` digests and `max` entries (a digest in several repositories
 * counts once for each); and its per-hour counts of verification times, from which every slot
 * leaving the cache (replaced, evicted, deleted) is taken off.
 */
function decisionCache(max: number): [LRUCache<string, Slot>, Map<number, number>] {
  const hours = new Map<number, number>();
  const cache = new LRUCache<string, Slot>({
    max,
    maxSize: max,
    sizeCalculation: (slot) => (isMany(slot) ? slot.length : 1),
    dispose: (slot) => countHours(hours, slot, -1),
  });
  return [cache, hours];
}

/** Adds `by` to the count of each entry's hour of verification in `slot`. */
function countHours(hours: Map<number, number>, slot: Slot, by: 1 | -1): void {
  if (!isMany(slot)) {
    countHour(hours, slot.verifiedAt, by);
    return;
  }
  for (const e of slot) {
    countHour(hours, e.verifiedAt, by);
  }
}

function countHour(hours: Map<number, number>, at: number, by: 1 | -1): void {
  if (!(at > 0)) {
    return;
  }
  const hour = Math.floor(at / HOUR_MS);
  const n = (hours.get(hour) ?? 0) + by;
  if (n === 0) {
    hours.delete(hour);
  } else {
    hours.set(hour, n);
  }
}

function isMany(slot: Slot): slot is readonly Held[] {
  return Array.isArray(slot);
}

/** The entry of `repository` in `slot`. */
function pick(slot: Slot | undefined, repository: string): Held | undefined {
  if (slot === undefined) {
    return undefined;
  }
  if (!isMany(slot)) {
    return slot.repository === repository ? slot : undefined;
  }
  return slot.find((e) => e.repository === repository);
}

/**
 * `s` as one flat string: a concatenation is kept by V8 as a tree of its parts, which a long-lived
 * key then holds on to (~3 objects more per key). Keys here are ASCII (registries, repositories,
 * tags); anything else is kept as it is.
 */
function flat(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s) ? Buffer.from(s, 'latin1').toString('latin1') : s;
}
