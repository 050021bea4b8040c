import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import * as decisions from '../../common/db/queries/decisions.ts';
import * as tags from '../../common/db/queries/tags.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { eventsChannel, type LedgerEvent } from '../../common/events.ts';
import type { Logger } from '../../common/logger.ts';
import type { DecisionStore } from './store.ts';
import { isUnreachable, type OutageLog } from '../../common/outage.ts';

const WARM_PAGE = 5_000;
const RESYNC_RETRY_MS = 5_000;

/**
 * Keeps a decision store in step with the ledger: warm-loaded from Postgres at start (and on a
 * new policy), then fed by the ledger-events channel (Redis pub/sub). Events published while the
 * subscription was down are never heard: the feed is `stale` until it is back and a reload from
 * Postgres has completed.
 */
export class LedgerFeed {
  readonly #db: Kysely<DB>;
  readonly #store: DecisionStore;
  /** The policy version whose decisions the store holds; events for any other are dropped. */
  readonly #policyVersion: () => string;
  readonly #log: Logger;
  #subscriber: Redis | null = null;
  readonly #listeners: ((event: LedgerEvent) => void)[] = [];
  /** The subscription dropped since the last complete load: events may have been missed. */
  #missedEvents = false;
  #resyncing = false;

  readonly #outage: OutageLog | null;

  constructor(db: Kysely<DB>, store: DecisionStore, policyVersion: () => string, log: Logger, outage: OutageLog | null = null) {
    this.#outage = outage;
    this.#db = db;
    this.#store = store;
    this.#policyVersion = policyVersion;
    this.#log = log;
  }

  /** Subscribes first, then loads, so nothing published during the load is missed. */
  async start(subscriber: Redis, prefix: string): Promise<void> {
    this.#subscriber = subscriber;
    subscriber.on('message', (_channel: string, message: string) => this.#receive(message));
    await subscriber.subscribe(eventsChannel(prefix));
    await this.warm();
    // While the subscription was down, decisions were published that this replica never heard:
    // when it is back (ioredis re-subscribes), reload from Postgres. Until then answers are `stale`.
    subscriber.on('close', () => {
      this.#missedEvents = true;
    });
    subscriber.on('ready', () => this.#resync(subscriber));
  }

  /** Calls `listener` with every ledger event this replica receives, after applying it. */
  onEvent(listener: (event: LedgerEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** The ledger-events subscription is not live: updates may have been missed. */
  stale(): boolean {
    return this.#missedEvents || (this.#subscriber !== null && this.#subscriber.status !== 'ready');
  }

  /** Loads every decision under the current policy, and every tag, from Postgres. */
  async warm(): Promise<void> {
    const started = performance.now();
    let after = '0';
    for (;;) {
      const page = await decisions.list(this.#db, this.#policyVersion(), after, WARM_PAGE);
      for (const d of page.decisions) {
        // Never replace what an event brought meanwhile with an older row.
        const held = this.#store.get(d.registry, d.repository, d.digest);
        if (held === undefined || held.verifiedAt <= d.verifiedAt.getTime()) {
          this.#store.set(d.registry, d.repository, d.digest, this.#store.entry(d, d.verifiedAt));
        }
      }
      if (page.last === null) {
        break;
      }
      after = page.last;
    }
    for (const t of await tags.listAll(this.#db)) {
      this.#store.setTag(t.registry, t.repository, t.tag, t.digest);
    }
    this.#log.info({ decisions: this.#store.size, tags: this.#store.tagCount, ms: Math.round(performance.now() - started) }, 'decision table loaded');
  }

  /** Applies one ledger event to the store: a tag move, or a decision under the current policy. */
  apply(event: LedgerEvent): void {
    if (event.type === 'tag') {
      this.#store.setTag(event.registry, event.repository, event.tag, event.digest);
    } else if (event.type === 'decision' && event.policyVersion === this.#policyVersion()) {
      this.#store.set(event.registry, event.repository, event.digest, this.#store.entry(event, event.verifiedAt));
    }
  }

  #receive(message: string): void {
    let event: LedgerEvent;
    try {
      event = JSON.parse(message) as LedgerEvent;
    } catch (err) {
      this.#log.warn({ err }, 'ignoring a malformed ledger event');
      return;
    }
    this.apply(event);
    for (const listener of this.#listeners) {
      listener(event);
    }
  }

  #resync(subscriber: Redis): void {
    if (!this.#missedEvents || this.#resyncing || subscriber.status !== 'ready') {
      return;
    }
    this.#resyncing = true;
    this.#log.info('ledger-events subscription is back: reloading decisions missed meanwhile');
    this.warm().then(
      () => {
        this.#missedEvents = false;
        this.#resyncing = false;
      },
      (err: unknown) => {
        this.#resyncing = false;
        if (this.#outage !== null && isUnreachable(err)) {
          this.#outage.error(err as Error, 'decision table reload');
        } else {
          this.#log.warn({ err }, 'could not reload decisions after the subscription came back; retrying, answers stay stale meanwhile');
        }
        setTimeout(() => this.#resync(subscriber), RESYNC_RETRY_MS).unref();
      },
    );
  }
}
