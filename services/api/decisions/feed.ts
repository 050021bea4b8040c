import type { RedisClient } from '../../common/redis.ts';
import type { Kysely } from 'kysely';
import * as decisions from '../../common/db/queries/decisions.ts';
import * as redecision from '../../common/db/queries/redecision.ts';
import * as tags from '../../common/db/queries/tags.ts';
import * as wal from '../../common/db/queries/wal.ts';
import { compareLsn } from '../../common/db/queries/wal.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import type { LedgerEvent } from '../../common/events.ts';
import type { Logger } from '../../common/logger.ts';
import { type FeedStream, type FollowerStats, StreamFollower } from '../../common/stream-feed.ts';
import type { DecisionStore } from './store.ts';
import { isUnreachable, type OutageLog } from '../../common/outage.ts';

/** Image ids per query of a full load. */
const WARM_RANGE = 5_000n;
/** Rows per query of a bounded load (decisions) and of the tags' load. */
const PAGE = 10_000;
/** How much earlier than the feed's last read a catch-up after a disconnection reads decisions from. */
const CATCH_UP_MARGIN_MS = 60_000;

/**
 * Keeps a decision store in step with the ledger: loaded from Postgres at start (and on a new
 * policy), then fed by the ledger-events stream (stream-feed.ts). After a disconnection it resumes
 * from the last event applied; it reloads from Postgres only when it fell behind the stream's
 * window. While it is disconnected or catching up, answers are `stale`.
 */
export class LedgerFeed {
  readonly #db: Kysely<DB>;
  readonly #store: DecisionStore;
  /** The policy version whose decisions the store holds; events for any other are dropped. */
  readonly #policyVersion: () => string;
  readonly #log: Logger;
  #follower: StreamFollower<LedgerEvent> | null = null;
  readonly #listeners: ((event: LedgerEvent) => void)[] = [];
  /** A policy's decisions being loaded aside (see setPending). */
  #pending: { readonly version: string; readonly store: DecisionStore } | null = null;
  /** The highest primary WAL position an applied event carried: what this replica was told. */
  #seenLsn: string | null = null;

  readonly #outage: OutageLog | null;

  constructor(db: Kysely<DB>, store: DecisionStore, policyVersion: () => string, log: Logger, outage: OutageLog | null = null) {
    this.#outage = outage;
    this.#db = db;
    this.#store = store;
    this.#policyVersion = policyVersion;
    this.#log = log;
  }

  /**
   * Notes the stream's end, loads from Postgres, then follows the stream from that end, so nothing
   * appended during the load is missed.
   */
  async start(connection: RedisClient, stream: FeedStream): Promise<void> {
    this.#follower = new StreamFollower<LedgerEvent>(
      connection,
      stream,
      { reload: () => this.#reload(), apply: (events) => this.#receive(events), catchUp: (since) => this.#catchUp(since) },
      this.#log,
    );
    await this.#follower.start();
  }

  /** Stops following the stream. */
  async stop(): Promise<void> {
    await this.#follower?.stop();
  }

  /** Calls `listener` with every ledger event this replica receives, after applying it. */
  onEvent(listener: (event: LedgerEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** The feed is not live (disconnected or catching up): updates may be missing. */
  stale(): boolean {
    return this.#follower !== null && this.#follower.stale();
  }

  /** Whether the feed's Redis connection is up. */
  connected(): boolean {
    return this.#follower === null || this.#follower.connected();
  }

  /** Reloads, resumptions and events applied since start. */
  stats(): FollowerStats {
    return this.#follower?.stats() ?? { reloads: 0, resumes: 0, applied: 0 };
  }

  /** A reload after falling behind the window; a Postgres outage is reported through the process's one account of it. */
  async #reload(): Promise<void> {
    try {
      await this.warm();
    } catch (err) {
      if (this.#outage !== null && isUnreachable(err)) {
        this.#outage.error(err as Error, 'decision table reload');
      }
      throw err;
    }
  }

  /**
   * After the feed resumed: the decisions made since `since` (a margin earlier, for the clocks of
   * worker and replica and for commits stamped before they published), read from Postgres. A
   * decision whose event never reached the stream while Redis was away (a publisher that gave up,
   * a failover that lost acknowledged writes) would otherwise stay as this replica last heard it.
   */
  async #catchUp(since: Date): Promise<void> {
    const from = new Date(since.getTime() - CATCH_UP_MARGIN_MS);
    await this.load(this.#store, this.#policyVersion(), from);
    const pending = this.#pending;
    if (pending !== null) {
      await this.load(pending.store, pending.version, from);
    }
    this.#log.info({ decidedSince: from }, 'decision table caught up with Postgres for the time the feed was away');
  }

  /** Loads every decision under the current policy (and the pending one's, if loading), and every tag, from Postgres. */
  async warm(): Promise<void> {
    const started = performance.now();
    // Decisions and tags at once, on two connections: each is a series of index reads that keeps
    // one core busy between Node and Postgres (at 10M signatures, a bounded replica's start went
    // from ~5.9 s to ~3.5 s).
    const [since] = await Promise.all([this.load(this.#store, this.#policyVersion()), this.#loadTags()]);
    const pending = this.#pending;
    if (pending !== null) {
      await this.load(pending.store, pending.version);
    }
    this.#log.info(
      { decisions: this.#store.size, tags: this.#store.tagCount, maxEntries: this.#store.maxEntries, decidedSince: since, ms: Math.round(performance.now() - started) },
      'decision table loaded',
    );
  }

  /**
   * Loads every decision under `policyVersion` into `store` (a bounded store: the most recently
   * decided ones; with `decidedSince`, those decided since then), never replacing what an event
   * brought meanwhile with an older row. Returns the cutoff of a bounded load.
   */
  async load(store: DecisionStore, policyVersion: string, decidedSince?: Date): Promise<Date | null> {
    // What the load reads is at least as new as this: a read replica must have replayed it too.
    this.#see(await wal.currentLsn(this.#db));
    // A bounded table loads the most recently decided images only (what it would keep anyway).
    const since = decidedSince ?? (await decisions.recentCutoff(this.#db, policyVersion, store.maxEntries));
    const keep = (d: decisions.StoredDecision) => {
      const held = store.peek(d.registry, d.repository, d.digest);
      if (held === undefined || held.verifiedAt <= d.verifiedAt.getTime()) {
        store.set(d.registry, d.repository, d.digest, store.entry(d, d.verifiedAt));
      }
    };
    if (since === null) {
      // Every decision: a range of image ids at a time, to the highest (see decisions.listRange).
      const end = BigInt(await redecision.maxImageId(this.#db));
      for (let lo = 0n; lo < end; lo += WARM_RANGE) {
        (await decisions.listRange(this.#db, policyVersion, String(lo), String(lo + WARM_RANGE))).forEach(keep);
      }
    } else {
      // The most recent only, oldest first (the newest end up the most recently used), through the
      // index on decided_at: a bounded load reads what it keeps, not the whole ledger. A version
      // with a base: the base's rows of images without one under the version, then the version's.
      const base = await redecision.baseOf(this.#db, policyVersion);
      const sweeps: [string, string | null][] = base === null ? [[policyVersion, null]] : [[base, policyVersion], [policyVersion, null]];
      for (const [version, shadowedBy] of sweeps) {
        let after: decisions.DecisionCursor | null = null;
        for (;;) {
          const page = await decisions.listRecentPage(this.#db, version, since, after, PAGE, shadowedBy);
          page.forEach(keep);
          if (page.length < PAGE) {
            break;
          }
          after = page.at(-1)!.cursor;
        }
      }
    }
    return since;
  }

  /**
   * Loads the tags into the store: the `maxEntries` most recently updated (every tag when they
   * fit), least recent first, a page at a time. A tag not held is looked up in Postgres when asked.
   */
  async #loadTags(): Promise<void> {
    const since = await tags.recentCutoff(this.#db, this.#store.maxEntries);
    let after: tags.TagPosition | null = null;
    for (;;) {
      const page = await tags.listRecentPage(this.#db, since, after, PAGE);
      for (const t of page) {
        this.#store.setTag(t.registry, t.repository, t.tag, t.digest);
      }
      if (page.length < PAGE) {
        break;
      }
      after = page.at(-1)!.position;
    }
  }

  /**
   * Decision events under `version` go to `store` (being loaded aside for a switch of policy)
   * from now on, until called with null.
   */
  setPending(pending: { readonly version: string; readonly store: DecisionStore } | null): void {
    this.#pending = pending;
  }

  /** Applies one ledger event to the store: a tag move, or a decision under the current policy (or the one loaded aside). */
  apply(event: LedgerEvent): void {
    if (event.type === 'tag') {
      this.#store.setTag(event.registry, event.repository, event.tag, event.digest);
    } else if (event.type === 'decision') {
      if (event.policyVersion === this.#policyVersion()) {
        this.#store.set(event.registry, event.repository, event.digest, this.#store.entry(event, event.verifiedAt));
      }
      // Also when it is the same version (a reload once the ledger is decided in full under it).
      if (event.policyVersion === this.#pending?.version) {
        const { store } = this.#pending;
        store.set(event.registry, event.repository, event.digest, store.entry(event, event.verifiedAt));
      }
    }
  }

  /** The highest primary WAL position of an event applied, null before any. */
  seenLsn(): string | null {
    return this.#seenLsn;
  }

  #see(lsn: string): void {
    if (this.#seenLsn === null || compareLsn(lsn, this.#seenLsn) > 0) {
      this.#seenLsn = lsn;
    }
  }

  #receive(events: readonly LedgerEvent[]): void {
    for (const event of events) {
      if ('lsn' in event && event.lsn !== undefined) {
        this.#see(event.lsn);
      }
      this.apply(event);
      for (const listener of this.#listeners) {
        listener(event);
      }
    }
  }
}
