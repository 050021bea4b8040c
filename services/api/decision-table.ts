import type { RedisClient } from '../common/redis.ts';
import type { Kysely } from 'kysely';
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

  /**
   * `opts.readDb`: a streaming replica for misses (DATABASE_READ_URL), read only when fresh enough;
   * `opts.maxEntries`: decisions (and tags) kept in memory (SIGNET_DECISION_TABLE_MAX).
   */
  constructor(
    db: Kysely<DB>,
    policy: Policy,
    log: Logger,
    learner: Learner | null = null,
    opts: { allowUnknown?: boolean; mirrors?: readonly Mirror[]; readDb?: Kysely<DB> | null; outage?: OutageLog; maxEntries?: number } = {},
  ) {
    this.#store = new DecisionStore(opts.maxEntries);
    this.#policy = policy;
    this.#db = db;
    this.#readDb = opts.readDb === db ? null : (opts.readDb ?? null);
    this.#log = log;
    this.#feed = new LedgerFeed(db, this.#store, () => this.#policy.version, log, opts.outage ?? null);
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

  /** Whether this replica may be behind the ledger (its feed is down): answers carry `stale`. */
  get stale(): boolean {
    return this.#feed.stale();
  }

  /** When the decision of the longest-unchanged entry was verified (epoch ms), null when empty. */
  oldestVerifiedAt(): number | null {
    return this.#store.oldestVerifiedAt();
  }

  /** Loads from Postgres, then follows the ledger-events stream (see LedgerFeed.start). */
  start(connection: RedisClient, stream: FeedStream): Promise<void> {
    return this.#feed.start(connection, stream);
  }

  /** Stops following the ledger-events stream. */
  stop(): Promise<void> {
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
   * Switches to a new policy: forgets every decision (tags stay) and reloads those already stored
   * under the new version. Until the worker has re-decided an image, a lookup computes its decision
   * from the ledger's stored facts, so a policy change never makes answers `unknown`.
   */
  async setPolicy(policy: Policy): Promise<void> {
    if (policy.version === this.#policy.version) {
      return;
    }
    this.#policy = policy;
    this.#store.clearDecisions();
    await this.#feed.warm();
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
