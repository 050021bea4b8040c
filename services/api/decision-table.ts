import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { DB } from '../common/db/schema.generated.ts';
import type { LedgerEvent } from '../common/events.ts';
import type { Mirror } from '../common/domain/mirrors.ts';
import type { Logger } from '../common/logger.ts';
import type { Policy } from '../common/policy/policy.ts';
import { LedgerFeed } from './decisions/feed.ts';
import { DecisionLookup, type ImageDecision, type ImageDecisions, type Learner } from './decisions/lookup.ts';
import { DecisionStore } from './decisions/store.ts';
import type { OutageLog } from '../common/outage.ts';

export type { Learner };

/**
 * The decision table of one API process: every decision under the current policy and every tag,
 * in memory, warm-loaded from Postgres at start and kept fresh by the ledger-events channel.
 * A miss falls back to Postgres (and is remembered); nothing here calls a registry.
 *
 * It wires three parts around the policy in force: the store (decisions/store.ts), the ledger
 * feed that fills it (decisions/feed.ts) and the lookups that read it (decisions/lookup.ts).
 */
export class DecisionTable implements ImageDecisions {
  readonly #store = new DecisionStore();
  readonly #feed: LedgerFeed;
  readonly #lookup: DecisionLookup;
  #policy: Policy;

  constructor(db: Kysely<DB>, policy: Policy, log: Logger, learner: Learner | null = null, opts: { allowUnknown?: boolean; mirrors?: readonly Mirror[]; outage?: OutageLog } = {}) {
    this.#policy = policy;
    this.#feed = new LedgerFeed(db, this.#store, () => this.#policy.version, log, opts.outage ?? null);
    this.#lookup = new DecisionLookup({
      db,
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

  /** Subscribes first, then loads, so nothing published during the load is missed. */
  start(subscriber: Redis, prefix: string): Promise<void> {
    return this.#feed.start(subscriber, prefix);
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
