import type { RedisClient } from '../common/redis.ts';
import type { Kysely } from 'kysely';
import * as redecision from '../common/db/queries/redecision.ts';
import * as wal from '../common/db/queries/wal.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { LedgerEvent } from '../common/events.ts';
import type { Mirror } from '../common/domain/mirrors.ts';
import type { Logger } from '../common/logger.ts';
import type { Policy } from '../common/policy/policy.ts';
import type { FeedStream, FollowerStats } from '../common/stream-feed.ts';
import { LedgerFeed } from './decisions/feed.ts';
import { DecisionLookup, type ImageDecision, type ImageDecisions, type Learner } from './decisions/lookup.ts';
import { DecisionStore } from './decisions/store.ts';
import type { OutageLog } from '../common/outage.ts';

export type { Learner };

/** How often a table waiting to switch policy asks Postgres whether the ledger is decided under it (the feed's announcement is the fast path). */
const POLL_MS = 2_000;

/**
 * The decision table of one API process: every decision under the current policy and every tag,
 * in memory, warm-loaded from Postgres at start and kept fresh by the ledger-events stream.
 * A miss falls back to Postgres (and is remembered); nothing here calls a registry.
 *
 * It wires three parts around the policy in force: the store (decisions/store.ts), the ledger
 * feed that fills it (decisions/feed.ts) and the lookups that read it (decisions/lookup.ts).
 */
export class DecisionTable implements ImageDecisions {
  readonly #store: DecisionStore;
  readonly #feed: LedgerFeed;
  readonly #lookup: DecisionLookup;
  #policy: Policy;
  readonly #db: Kysely<DB>;
  readonly #readDb: Kysely<DB> | null;
  readonly #log: Logger;
  readonly #missReads = { replica: 0, primary: 0 };
  /** The policy to answer under once the ledger is decided in full under it (the one in force itself: reload then). */
  #pending: Policy | null = null;
  #switching: Promise<void> | null = null;
  #poll: NodeJS.Timeout | null = null;
  readonly #pollMs: number;

  /**
   * `opts.readDb`: a streaming replica for misses (DATABASE_READ_URL), read only when fresh enough;
   * `opts.maxEntries`: decisions (and tags) kept in memory (SIGNET_DECISION_TABLE_MAX).
   */
  constructor(
    db: Kysely<DB>,
    policy: Policy,
    log: Logger,
    learner: Learner | null = null,
    opts: { allowUnknown?: boolean; mirrors?: readonly Mirror[]; readDb?: Kysely<DB> | null; outage?: OutageLog; maxEntries?: number; pollMs?: number } = {},
  ) {
    this.#pollMs = opts.pollMs ?? POLL_MS;
    this.#store = new DecisionStore(opts.maxEntries);
    this.#policy = policy;
    this.#db = db;
    this.#readDb = opts.readDb === db ? null : (opts.readDb ?? null);
    this.#log = log;
    this.#feed = new LedgerFeed(db, this.#store, () => this.#policy.version, log, opts.outage ?? null);
    this.#feed.onEvent((event) => {
      if (event.type === 'policy' && event.version === this.#pending?.version) {
        void this.#trySwitch();
      }
    });
    this.#lookup = new DecisionLookup({
      reader: () => this.#reader(),
      store: this.#store,
      policy: () => this.#policy,
      stale: () => this.#feed.stale(),
      log,
      learner,
      allowUnknown: opts.allowUnknown ?? false,
      mirrors: opts.mirrors ?? [],
      outage: opts.outage ?? null,
    });
  }

  /**
   * The database a miss reads. The read replica only when it has replayed every change this
   * process was told of (the load at start, each feed event's WAL position): an answer is never
   * older than what this replica already knew. Otherwise, or when the replica cannot say, the primary.
   */
  async #reader(): Promise<Kysely<DB>> {
    const replica = this.#readDb;
    if (replica === null) {
      this.#missReads.primary++;
      return this.#db;
    }
    const seen = this.#feed.seenLsn();
    try {
      if (seen === null || (await wal.replayedUpTo(replica, seen))) {
        this.#missReads.replica++;
        return replica;
      }
    } catch (err) {
      this.#log.warn({ err }, 'read replica unavailable: reading the primary');
    }
    this.#missReads.primary++;
    return this.#db;
  }

  /** Misses read from the read replica and from the primary (behind, or no replica) since start. */
  missReads(): { readonly replica: number; readonly primary: number } {
    return { ...this.#missReads };
  }

  get size(): number {
    return this.#store.size;
  }

  /** Tags held in memory. */
  get tagCount(): number {
    return this.#store.tagCount;
  }

  /** Whether this replica may be behind the ledger (its feed is down): answers carry `stale`. */
  get stale(): boolean {
    return this.#feed.stale();
  }

  /** When the decision of the longest-unchanged entry was verified (epoch ms), null when empty. */
  oldestVerifiedAt(): number | null {
    return this.#store.oldestVerifiedAt();
  }

  /**
   * Loads from Postgres, then follows the ledger-events stream (see LedgerFeed.start). When the
   * worker has not yet decided the whole ledger under the policy, the table is loaded again once
   * it has (misses meanwhile read Postgres, or decide from the stored facts).
   */
  async start(connection: RedisClient, stream: FeedStream): Promise<void> {
    await this.#feed.start(connection, stream);
    this.#poll = setInterval(() => {
      if (this.#pending !== null) {
        void this.#trySwitch();
      }
    }, this.#pollMs);
    this.#poll.unref();
    try {
      if (!(await redecision.isComplete(this.#db, this.#policy.version))) {
        this.#pending = this.#policy;
      }
    } catch (err) {
      this.#log.warn({ err }, 'could not tell whether the ledger is decided under the policy in force');
    }
  }

  /** Stops following the ledger-events stream. */
  stop(): Promise<void> {
    if (this.#poll !== null) {
      clearInterval(this.#poll);
      this.#poll = null;
    }
    return this.#feed.stop();
  }

  /** Whether the ledger-events stream's connection is up. */
  feedConnected(): boolean {
    return this.#feed.connected();
  }

  /** The feed's reloads, resumptions and events applied since start. */
  feedStats(): FollowerStats {
    return this.#feed.stats();
  }

  /** Calls `listener` with every ledger event this replica receives, after applying it. */
  onEvent(listener: (event: LedgerEvent) => void): void {
    this.#feed.onEvent(listener);
  }

  /** The policy version answers are given under. */
  get policyVersion(): string {
    return this.#policy.version;
  }

  /**
   * A new policy: answers stay under the one in force, from its decisions, until the worker has
   * decided the whole ledger under the new one (its version marked complete in Postgres, announced
   * on the feed and polled for); then its decisions are loaded aside and take the old ones' place
   * at once (see {@link DecisionStore.adoptDecisions}). Resolves once switched, or once the switch
   * is left waiting for the worker.
   */
  async setPolicy(policy: Policy): Promise<void> {
    if (policy.version === this.#policy.version && this.#pending?.version !== policy.version) {
      // Back to the policy in force before a switch happened: nothing to wait for.
      this.#pending = null;
      return;
    }
    this.#pending = policy;
    this.#log.info({ policyVersion: this.#policy.version, pendingVersion: policy.version }, 'new policy: answering under the policy in force until the ledger is decided under the new one');
    await this.#trySwitch();
  }

  /** The policy the table switches to once the ledger is decided in full under it, if any. */
  get pendingPolicy(): Policy | null {
    return this.#pending;
  }

  /** Switches to the pending policy if its version is complete (one attempt at a time). */
  #trySwitch(): Promise<void> {
    this.#switching ??= this.#switch().finally(() => {
      this.#switching = null;
    });
    return this.#switching;
  }

  async #switch(): Promise<void> {
    const target = this.#pending;
    if (target === null) {
      return;
    }
    try {
      if (!(await redecision.isComplete(this.#db, target.version))) {
        return;
      }
      const started = performance.now();
      const store = new DecisionStore(this.#store.maxEntries);
      this.#feed.setPending({ version: target.version, store });
      try {
        await this.#feed.load(store, target.version);
        if (this.#pending !== target) {
          return; // superseded meanwhile: the poll takes the newer one up
        }
        // One synchronous step: no lookup sees a mix of the two policies.
        this.#store.adoptDecisions(store);
        this.#policy = target;
        this.#pending = null;
      } finally {
        this.#feed.setPending(null);
      }
      this.#log.info({ policyVersion: target.version, decisions: this.#store.size, ms: Math.round(performance.now() - started) }, 'switched to the new policy');
    } catch (err) {
      this.#log.warn({ err, pendingVersion: target.version }, 'could not switch to the new policy yet; answering under the policy in force');
    }
  }

  /** Applies one ledger event as if it had arrived on the channel (without telling listeners). */
  apply(event: LedgerEvent): void {
    this.#feed.apply(event);
  }

  /** The policy answers are given under. */
  get policy(): Policy {
    return this.#policy;
  }

  /** Answers one image reference (tag or digest) under the current policy, in `namespace`'s scope. */
  lookup(image: string, namespace: string | null = null): Promise<ImageDecision> {
    return this.#lookup.lookup(image, namespace);
  }
}
