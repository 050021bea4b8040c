import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisClient } from './redis.ts';
import type { Logger } from './logger.ts';

/**
 * A durable feed over a Redis stream of bounded length: producers append JSON messages
 * (`XADD … MAXLEN ~ n`), each follower reads them in order from the last ID it applied and, after a
 * disconnection, resumes there. It reloads its whole state from the source of truth only when it
 * fell behind the retained window (what it had not read yet was trimmed), or when the stream it
 * read is gone or went backwards (Redis lost data). Generic over what it carries: the decision
 * table's ledger events are one use.
 *
 * Why a Redis stream and not Postgres logical decoding: Redis is already every role's dependency
 * and each follower needs nothing but its last ID (no replication slot per API replica, which
 * Postgres would retain WAL for while the replica is away — an unbounded disk risk on the primary,
 * and slots cap the replica count at `max_replication_slots`); the stream's bound is the window a
 * replica may be away without a full reload, and MAXLEN keeps Redis memory fixed.
 */
export interface FeedStream {
  /** The stream's key (`<prefix>:ledger-events`). */
  readonly key: string;
  /** Messages kept (approximately: `MAXLEN ~`, trimmed by whole stream nodes). */
  readonly maxLen: number;
}

/** The one field each stream entry carries: the message as JSON. */
const FIELD = 'm';

/** Rounds of {@link appendToFeed} before it gives up (each waits for the connection to be back). */
const APPEND_ROUNDS = 5;

/**
 * Appends `messages` to the stream in one round trip, trimming it to about `maxLen`; what a dropped
 * connection failed is appended again, so every message is in the stream at least once (a follower
 * applies one twice harmlessly) when this resolves. Throws only when a round trip still fails after
 * {@link APPEND_ROUNDS} (Redis refusing the writes, or the connection giving up).
 *
 * Why the rounds: when the connection drops after Redis answered some of a pipeline's commands,
 * ioredis rejects the rest ("Command aborted due to connection close") instead of sending them
 * again; dropped, a decision's event would leave API replicas that hold the image's earlier answer
 * with it for good.
 */
export async function appendToFeed(redis: RedisClient, stream: FeedStream, messages: readonly unknown[]): Promise<void> {
  let left = messages.map((m) => JSON.stringify(m));
  for (let round = 1; ; round++) {
    const pipeline = redis.pipeline();
    for (const m of left) {
      pipeline.xadd(stream.key, 'MAXLEN', '~', String(stream.maxLen), '*', FIELD, m);
    }
    let errors: (Error | null)[];
    try {
      errors = ((await pipeline.exec()) ?? []).map(([err]) => err);
    } catch (err) {
      errors = left.map(() => err as Error);
    }
    const failed = left.filter((_, i) => errors[i] !== null);
    if (failed.length === 0) {
      return;
    }
    if (round >= APPEND_ROUNDS) {
      throw errors.find((e) => e !== null && e !== undefined) ?? new Error(`could not append ${failed.length} messages to ${stream.key}`);
    }
    left = failed;
    // A connection that queues commands while offline waits for Redis itself; one that fails fast does not.
    await sleep(100 * round);
  }
}

/** A stream entry ID (`<ms>-<seq>`) compared to another: <0, 0, >0. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  if (am !== bm) {
    return am < bm ? -1 : 1;
  }
  return as === bs ? 0 : as < bs ? -1 : 1;
}

/** What XINFO STREAM says about the window, or null when the stream does not exist. */
export interface Window {
  readonly first: string | null;
  readonly lastGenerated: string;
  readonly length: number;
  /** Redis ≥ 7.0: every entry ever added (trimmed ones included); null before 7.0. */
  readonly entriesAdded: number | null;
}

export async function readWindow(redis: RedisClient, key: string): Promise<Window | null> {
  let reply: unknown[];
  try {
    reply = (await redis.xinfo('STREAM', key)) as unknown[];
  } catch (err) {
    if (err instanceof Error && /no such key/i.test(err.message)) {
      return null;
    }
    throw err;
  }
  const info = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) {
    info.set(String(reply[i]), reply[i + 1]);
  }
  const first = info.get('first-entry') as [string, unknown] | null | undefined;
  const added = info.get('entries-added') as number | undefined;
  return { first: first?.[0] ?? null, lastGenerated: info.get('last-generated-id') as string, length: info.get('length') as number, entriesAdded: added ?? null };
}

/**
 * Where a follower stands: the ID of the last entry it applied, and (Redis ≥ 7.0) that entry's
 * number among every entry ever added to the stream (`entries-added` when it was the last one).
 */
export interface Position {
  readonly id: string;
  readonly seq: number | null;
}

/**
 * Whether a follower at `at` missed entries it can no longer read. Entries are only ever trimmed
 * from the head (nothing is XDEL'd), so on Redis ≥ 7.0 the count is exact: more entries were added
 * after the follower's than the stream retains. A stream that is gone, or whose count or last ID
 * went backwards (a restart or failover lost entries the follower had read), means a reload too.
 * Before 7.0 the sign is the first retained ID being after the last one read (conservative: it
 * also reloads when only that entry itself was trimmed).
 */
export function fellBehind(window: Window | null, at: Position): boolean {
  const started = at.id !== '0-0';
  if (window === null) {
    return started;
  }
  if (compareIds(window.lastGenerated, at.id) < 0) {
    return true;
  }
  if (window.entriesAdded !== null && at.seq !== null) {
    return window.entriesAdded < at.seq || window.entriesAdded - at.seq > window.length;
  }
  return started && window.first !== null && compareIds(window.first, at.id) > 0;
}

export interface FollowerHooks<T> {
  /** Loads the whole state from the source of truth: at start, and after falling behind. */
  reload(): Promise<void>;
  /** Applies messages in stream order. */
  apply(messages: readonly T[]): void;
  /**
   * After resuming from a disconnection (not after a reload), once the messages read then are
   * applied: reads from the source of truth what changed since `since` (the last moment the
   * follower knew it was connected, by its clock), for anything whose message never reached the
   * stream while Redis was away. Until it succeeds (it is tried after every read), the follower is
   * stale.
   */
  catchUp?(since: Date): Promise<void>;
}

/** Counts since start, for metrics and tests. */
export interface FollowerStats {
  /** Full reloads because the follower fell behind the window (the load at start is not one). */
  readonly reloads: number;
  /** Resumptions from the last applied ID after a disconnection, without a reload. */
  readonly resumes: number;
  /** Messages applied. */
  readonly applied: number;
}

const PAGE = 1_000;
const BLOCK_MS = 2_000;
const RETRY_MS = 500;

/**
 * Follows a {@link FeedStream} over a connection of its own (a blocking read holds it). A read cut
 * by a disconnection is either failed or resent by ioredis once Redis is back; either way the
 * follower checks the window before it applies anything read after the drop.
 */
export class StreamFollower<T> {
  readonly #redis: RedisClient;
  readonly #stream: FeedStream;
  readonly #hooks: FollowerHooks<T>;
  readonly #log: Logger;
  /** The ID of the last message applied (or the stream's end when the state was last loaded). */
  #last = '0-0';
  /** That entry's number in the stream (entries-added), when Redis says (≥ 7.0). */
  #seq: number | null = null;
  /** The connection dropped since the window was last checked: messages may be gone. */
  #interrupted = false;
  /** When the last read came back (the follower was connected then), for the catch-up after a drop. */
  #lastHeard = new Date();
  /** A catch-up not done yet (it failed, or is under way): from when. */
  #owedSince: Date | null = null;
  /** The last read returned less than a page: the follower is at the stream's end. */
  #caughtUp = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #reloads = 0;
  #resumes = 0;
  #applied = 0;

  constructor(redis: RedisClient, stream: FeedStream, hooks: FollowerHooks<T>, log: Logger) {
    this.#redis = redis;
    this.#stream = stream;
    this.#hooks = hooks;
    this.#log = log;
  }

  /** Notes the stream's end, loads the state, then follows from that end in the background. */
  async start(): Promise<void> {
    this.#redis.on('close', () => {
      if (!this.#interrupted && !this.#stopped) {
        this.#log.warn({ stream: this.#stream.key, last: this.#last }, 'decision feed interrupted; answers are stale until it resumes');
      }
      this.#interrupted = true;
    });
    await this.#loadFrom(await readWindow(this.#redis, this.#stream.key));
    this.#loop = this.#run();
  }

  /** Behind the stream (disconnected, or catching up) — answers may miss recent messages. */
  stale(): boolean {
    return this.#interrupted || !this.#caughtUp || this.#owedSince !== null || this.#redis.status !== 'ready';
  }

  /** Whether the follower's connection is up. */
  connected(): boolean {
    return this.#redis.status === 'ready';
  }

  stats(): FollowerStats {
    return { reloads: this.#reloads, resumes: this.#resumes, applied: this.#applied };
  }

  /** Stops following and closes the connection (a blocked read does not hold shutdown up). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#redis.disconnect();
    await this.#loop;
  }

  async #loadFrom(window: Window | null): Promise<void> {
    // The end is noted before the load, so nothing appended during it is missed (some is applied twice).
    this.#last = window?.lastGenerated ?? '0-0';
    this.#seq = window === null ? 0 : window.entriesAdded;
    await this.#hooks.reload();
    this.#caughtUp = true;
  }

  async #run(): Promise<void> {
    let failing = false;
    while (!this.#stopped) {
      try {
        await this.#readPage();
        failing = false;
      } catch (err) {
        if (this.#stopped) {
          break;
        }
        this.#interrupted = true;
        if (!failing) {
          failing = true;
          this.#log.warn({ err, stream: this.#stream.key, last: this.#last }, 'decision feed read failed; retrying, answers are stale meanwhile');
        }
        await sleep(RETRY_MS);
      }
    }
  }

  /**
   * After a disconnection: resume from the last ID, or reload when what came since was trimmed.
   * Returns whether the follower resumed (what a read after `last` returned may be applied).
   */
  async #resume(): Promise<boolean> {
    // Cleared first: a drop while resuming sets it again, and the next read checks once more.
    this.#interrupted = false;
    const window = await readWindow(this.#redis, this.#stream.key);
    if (fellBehind(window, { id: this.#last, seq: this.#seq })) {
      this.#log.warn({ stream: this.#stream.key, last: this.#last, window }, 'fell behind the decision feed window: reloading everything');
      // Stale until the reload is complete.
      this.#caughtUp = false;
      await this.#loadFrom(window);
      this.#reloads++;
      return false;
    }
    this.#resumes++;
    this.#log.info({ stream: this.#stream.key, last: this.#last }, 'decision feed resumed from the last message applied');
    return true;
  }

  async #readPage(): Promise<void> {
    const reply = await this.#redis.xread('COUNT', PAGE, 'BLOCK', BLOCK_MS, 'STREAMS', this.#stream.key, this.#last);
    // The connection dropped since the last check: trimming after `last` is checked now (entries go
    // from the head only, so if nothing after `last` is gone now, the reply is contiguous with it).
    const since = this.#lastHeard;
    if (this.#interrupted) {
      if (!(await this.#resume())) {
        // Reloaded: nothing is owed any more.
        this.#owedSince = null;
        this.#lastHeard = new Date();
        return;
      }
      // Owed from the earliest drop not caught up yet.
      this.#owedSince ??= since;
    }
    const entries = reply?.[0]?.[1] ?? [];
    const messages: T[] = [];
    for (const [, fields] of entries) {
      const raw = fields[fields.indexOf(FIELD) + 1];
      try {
        messages.push(JSON.parse(raw ?? '') as T);
      } catch (err) {
        this.#log.warn({ err, stream: this.#stream.key }, 'ignoring a malformed feed message');
      }
    }
    if (messages.length > 0) {
      this.#hooks.apply(messages);
      this.#applied += messages.length;
    }
    if (entries.length > 0) {
      this.#last = entries.at(-1)![0];
      this.#seq = this.#seq === null ? null : this.#seq + entries.length;
    }
    const owed = this.#owedSince;
    if (owed !== null) {
      // After what the stream kept: the source of truth is at least as new as those messages. A
      // failure (Postgres away too) leaves it owed, tried again after the next read.
      try {
        await this.#hooks.catchUp?.(owed);
        this.#owedSince = null;
      } catch (err) {
        this.#log.warn({ err, stream: this.#stream.key, since: owed }, 'could not read what changed while the feed was away; trying again');
      }
    }
    if (!this.#interrupted) {
      this.#lastHeard = new Date();
    }
    this.#caughtUp = entries.length < PAGE;
  }
}
