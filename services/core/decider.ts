import type { RedisClient } from '../common/redis.ts';
import type { Kysely } from 'kysely';
import * as decisions from '../common/db/queries/decisions.ts';
import * as redecision from '../common/db/queries/redecision.ts';
import * as wal from '../common/db/queries/wal.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { publishEvents, type LedgerEvent } from '../common/events.ts';
import type { FeedStream } from '../common/stream-feed.ts';
import type { Logger } from '../common/logger.ts';
import { packageVersion } from '../common/build-info.ts';
import { requiredPredicateTypes } from '../common/policy/attestations.ts';
import { diffPolicies, type PolicyChange, touches } from '../common/policy/diff.ts';
import { decide } from '../common/policy/evaluate.ts';
import { EMPTY_POLICY } from '../common/policy/load.ts';
import { parsePolicy, type Policy } from '../common/policy/policy.ts';

export interface Decider {
  readonly policy: Policy;
  /** Switches policy; the caller then runs {@link Decider.redecide}. */
  setPolicy(policy: Policy, source: string): void;
  /**
   * Decides the given manifests under the current policy (and, while a pass is under way, under
   * the version API replicas answer from until it completes), stores and publishes the decisions.
   */
  decideManifests(manifestIds: readonly string[]): Promise<number>;
  /**
   * Brings the ledger to a decision that counts for every image under the policy in force, from
   * stored material (no registry calls), in pages: images that have one are left alone, images
   * the edit since the last version decided in full did not touch get that version's decision
   * carried over, the rest are decided. `full` decides every image (what a policy change did
   * before). Marks the version complete and announces it, unless a newer policy came meanwhile.
   */
  redecide(opts?: {
    readonly full?: boolean;
    /**
     * False: the pass stops once API replicas can switch, leaving the untouched decisions read
     * through the base (tests and benchmarks look at that state; the next pass carries them).
     */
    readonly carry?: boolean;
  }): Promise<RedecideResult>;
  /**
   * Decides again every image whose decision under the policy in force expired by now (an
   * attestation condition read the time), then has the next expiry scheduled. Returns how many.
   */
  decideExpired(): Promise<number>;
  /** Running totals and the pass under way, for `/metrics`. */
  stats(): RedecideStats;
}

/** What a pass did. */
export interface RedecideResult {
  readonly policyVersion: string;
  /**
   * `unchanged`: the version was decided in full already (a restart), only images without a
   * decision that counts are decided; `incremental`: carried over from `base` but for the images
   * the edit touched; `full`: every image without a decision that counts (no usable base, or an
   * edit not attributable to rules).
   */
  readonly kind: PassKind;
  readonly base: string | null;
  readonly decided: number;
  readonly carried: number;
  readonly current: number;
  /** False when a newer policy took over before the pass ended. */
  readonly complete: boolean;
  readonly ms: number;
  /**
   * When API replicas could switch to the version (it was marked complete), from the pass's
   * start; null for a restart (complete before) or a pass stopped first. Untouched decisions are
   * carried over after that (`ms` includes it).
   */
  readonly switchMs: number | null;
}

export type PassKind = 'unchanged' | 'incremental' | 'full';

export interface RedecideStats {
  /** Images since start, by what a pass did with them. */
  readonly images: { readonly decided: number; readonly carried: number; readonly current: number };
  /** Passes since start, by kind. */
  readonly passes: Readonly<Record<PassKind, number>>;
  /** The pass under way and the share of the ledger's image ids it went over; null when none runs. */
  readonly running: { readonly policyVersion: string; readonly ratio: number } | null;
}

/** Where a pass is: up to which image id, of the ledger's highest (`end`). */
interface PassProgress {
  readonly policyVersion: string;
  position: bigint;
  end: bigint;
}

function ratio(p: PassProgress): number {
  return p.end === 0n ? 1 : Math.min(1, Number(p.position) / Number(p.end));
}

/** Images per batch of decisions. */
const PAGE = 500;
/** Image ids a pass reads at a time. */
const RANGE = 20_000n;
/** Touched repositories whose images an edit's first phase reads at a time. */
const REPOSITORIES = 1000;
/** A pass logs its progress this often. */
const PROGRESS_LOG_MS = 10_000;
/** Decisions count under a policy version only when made by this Signet version (decision logic may differ between versions). */
export const DECIDED_BY = packageVersion();

export interface DeciderOptions {
  readonly db: Kysely<DB>;
  readonly redis: RedisClient;
  readonly stream: FeedStream;
  readonly policy: Policy;
  readonly policySource: string;
  readonly log: Logger;
  /** Has `decideExpired` run at `at` (the worker queues a delayed job); decisions with an expiry call it. */
  readonly scheduleExpiry?: (at: Date) => Promise<void>;
}

export function createDecider(opts: DeciderOptions): Decider {
  const { db, log } = opts;
  let policy = opts.policy;
  let source = opts.policySource;
  /**
   * While a pass is under way: the version API replicas still answer from (the last one decided
   * in full), which new decisions are also made under so that those answers stay current.
   */
  let previous: Policy | null = null;
  const recorded = new Set<string>();
  const totals = { decided: 0, carried: 0, current: 0 };
  const passes: Record<PassKind, number> = { unchanged: 0, incremental: 0, full: 0 };
  let running: PassProgress | null = null;

  /** Decides `manifestIds` under each of `under` (the first is the policy in force), stores and publishes. */
  async function decideUnder(under: readonly Policy[], manifestIds: readonly string[]): Promise<number> {
    if (manifestIds.length === 0) {
      return 0;
    }
    // The others (the version replicas answer from during a pass) are recorded already.
    const first = under[0]!;
    if (!recorded.has(first.version)) {
      await decisions.recordPolicy(db, first.version, source, DECIDED_BY);
      recorded.add(first.version);
    }
    const now = new Date();
    const types = [...new Set(under.flatMap((p) => requiredPredicateTypes(p)))].sort();
    const inputs = await decisions.loadInputs(db, manifestIds, types);
    const rows = under.flatMap((p) => inputs.map((input) => ({ input, decision: decide(p, input.registry, input.repository, input.facts, now) })));
    await decisions.upsert(db, rows);
    const expiries = rows.map((r) => r.decision.expiresAt).filter((e): e is string => typeof e === 'string');
    if (expiries.length > 0) {
      await schedule(new Date(expiries.sort()[0]!));
    }
    const lsn = await wal.currentLsn(db);
    const events: LedgerEvent[] = rows.map(({ input, decision }) => ({
      type: 'decision',
      registry: input.registry,
      repository: input.repository,
      digest: input.digest,
      verifiedAt: input.verifiedAt.toISOString(),
      lsn,
      ...decision,
    }));
    // Not swallowed: an API replica holding the image's earlier answer keeps it until it hears of
    // this one (only what it does not hold is read from Postgres). The job, or the pass, that
    // decided fails and is tried again, and deciding again publishes again.
    await publishEvents(opts.redis, opts.stream, events);
    return inputs.length;
  }
  async function decideManifests(manifestIds: readonly string[]): Promise<number> {
    return decideUnder(previous === null || previous.version === policy.version ? [policy] : [policy, previous], manifestIds);
  }
  async function schedule(at: Date): Promise<void> {
    try {
      await opts.scheduleExpiry?.(at);
    } catch (err) {
      // The decision is stored with its expiry: the next expiry job, or a restart, finds it due.
      log.warn({ err, expiresAt: at.toISOString() }, 'could not schedule the re-decision of expiring decisions');
    }
  }
  async function decideExpired(): Promise<number> {
    let total = 0;
    // Bounded: a condition that flips every second (`now.getSeconds() % 2 == 0`) must not hold the job forever.
    for (let round = 0; ; round++) {
      const due = await decisions.expiringBy(db, policy.version, new Date(), PAGE);
      if (due.length > 0) {
        total += await decideManifests(due);
      }
      const next = await decisions.nextExpiry(db, policy.version);
      if (next === null) {
        return total;
      }
      const wait = next.getTime() - Date.now();
      if (wait > 2000 || round >= 10) {
        // Never at this job's own time: the same id would collapse onto it.
        await schedule(new Date(Math.max(next.getTime(), Date.now() + 2500)));
        return total;
      }
      // Due within moments (or this job ran early): decide it here rather than schedule a job at
      // the very time this one carries.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait) + 5));
    }
  }

  /** The policy `last` was parsed from, when it can be read again as it was. */
  function reread(last: { readonly version: string; readonly source: string } | null): Policy | { unusable: string } {
    if (last === null) {
      return { unusable: 'no policy version was decided in full before' };
    }
    let parsed: Policy;
    try {
      parsed = last.version === EMPTY_POLICY.version ? EMPTY_POLICY : parsePolicy(last.source, `policy ${last.version}`);
    } catch (err) {
      return { unusable: `the last version decided in full (${last.version}) does not parse any more: ${(err as Error).message.split('\n')[0]}` };
    }
    if (parsed.version !== last.version) {
      return { unusable: `the last version decided in full (${last.version}) parses to another version now (${parsed.version})` };
    }
    return parsed;
  }

  async function redecide(passOpts: { readonly full?: boolean; readonly carry?: boolean } = {}): Promise<RedecideResult> {
    const target = policy;
    const started = performance.now();
    const full = passOpts.full === true;
    const claimed = await redecision.claimPolicy(db, target.version, source, DECIDED_BY);
    // In use: the policy versions' retention leaves it alone (see redecision.pruneRange).
    await redecision.markActive(db, target.version);
    recorded.add(target.version);
    // The version decided in full most recently before this one: what API replicas answer from
    // until this pass completes, and what untouched images' decisions are carried over from.
    const last = await redecision.lastComplete(db, DECIDED_BY, target.version);
    let change: PolicyChange;
    let carryFrom: redecision.Counted | null = null;
    let kind: PassKind;
    let base: string | null = null;
    // Decided in full, and nothing was since: a restart. Only images without a decision that
    // counts, and the carrying over a pass stopped before it finished.
    const restart = !full && claimed.completeAt !== null && (last === null || last.completeAt <= claimed.completeAt);
    if (restart) {
      kind = 'unchanged';
      change = { kind: 'none' };
      const through = await redecision.baseOf(db, target.version);
      const found = through === null ? null : await redecision.policyRow(db, through);
      const parsed = found === null ? null : reread(found);
      if (found !== null && parsed !== null && !('unusable' in parsed)) {
        base = found.version;
        change = diffPolicies(parsed, target);
        carryFrom = change.kind === 'all' ? null : found;
      }
    } else {
      await redecision.markIncomplete(db, target.version);
      const found = reread(last);
      if ('unusable' in found) {
        change = { kind: 'all', reason: found.unusable };
      } else {
        base = found.version;
        change = full ? { kind: 'all', reason: 'a full re-decision was asked for' } : diffPolicies(found, target);
        carryFrom = change.kind === 'all' ? null : last;
        // API replicas answer from it until this pass completes: keep its decisions current too.
        if (policy === target) {
          previous = found;
        }
      }
      kind = change.kind === 'all' ? 'full' : 'incremental';
    }
    passes[kind]++;
    const total = await redecision.countImages(db);
    // The repositories whose images the edit touched: decided again, not carried over.
    let touched = new Set<string>();
    if (carryFrom !== null && change.kind === 'rules') {
      // Only the registries the edit names can hold a touched repository (a few of many, often).
      const named = await redecision.repositories(db, [...change.patterns.keys()]);
      touched = new Set(named.filter((r) => touches(change, r.registry, r.name)).map((r) => r.id));
      if (touched.size === (await redecision.countRepositories(db))) {
        carryFrom = null; // every repository: nothing to carry over
      }
    }
    log.info(
      {
        policyVersion: target.version,
        kind,
        base,
        images: total,
        ...(change.kind === 'all' ? { reason: change.reason } : {}),
        ...(change.kind === 'rules' ? { rules: change.rules, repositoriesTouched: touched.size } : {}),
      },
      kind === 'unchanged' ? 'deciding images without a decision under the policy in force' : 're-deciding the ledger',
    );
    const counts = { decided: 0, carried: 0, current: 0 };
    const counted = { version: target.version, decidedFrom: claimed.decidedFrom };
    let lastLog = performance.now();

    /** At most every PROGRESS_LOG_MS: notes the version in use (retention) and logs how far `progress` is. */
    async function tick(progress: PassProgress, phase: 'switch' | 'carry', extra: Readonly<Record<string, number>>): Promise<void> {
      if (performance.now() - lastLog < PROGRESS_LOG_MS) {
        return;
      }
      lastLog = performance.now();
      await redecision.markActive(db, target.version);
      log.info(
        { policyVersion: target.version, kind, phase, percent: Math.round(ratio(progress) * 1000) / 10, ...extra, ...counts, ms: Math.round(lastLog - started) },
        're-deciding the ledger: progress',
      );
    }

    /**
     * Goes over the ledger a range of image ids at a time (see redecision.ts: by id, whatever the
     * statistics), to the highest id, then on while images were added meanwhile. Images with a
     * decision that counts are left; the touched ones and those without a decision that counts
     * under `carryFrom` are decided; the rest are carried over (`carry`) or left where they are,
     * read through the base until a later sweep carries them (`left`: how many). `complete` false
     * when a newer policy took over. `countCurrent`: which images whose decision counts already
     * `counts.current` counts (after {@link decideTouched}, those it did not count). `phase`: for
     * the progress log (`switch`: before replicas can switch to the version).
     */
    async function sweep(carry: boolean, countCurrent: 'all' | 'untouched', phase: 'switch' | 'carry'): Promise<{ complete: boolean; left: number }> {
      const progress: PassProgress = { policyVersion: target.version, position: 0n, end: BigInt(await redecision.maxImageId(db)) };
      running = progress;
      let left = 0;
      // Images to decide, in batches of PAGE across ranges (an edit touches few per range).
      const pending: string[] = [];
      const decidePending = async (all: boolean) => {
        while (pending.length >= (all ? 1 : PAGE)) {
          counts.decided += await decideUnder([target], pending.splice(0, PAGE));
        }
      };
      try {
        for (let lo = 0n; ; lo += RANGE) {
          if (policy !== target) {
            return { complete: false, left };
          }
          if (lo >= progress.end) {
            const end = BigInt(await redecision.maxImageId(db));
            if (lo >= end) {
              await decidePending(true);
              return { complete: true, left };
            }
            progress.end = end;
          }
          const hi = String(lo + RANGE);
          const now = new Date();
          const [inRange, decided, carriable] = await Promise.all([
            redecision.imagesInRange(db, String(lo), hi),
            full ? [] : redecision.decisionsInRange(db, target.version, String(lo), hi),
            carryFrom === null ? [] : redecision.decisionsInRange(db, carryFrom.version, String(lo), hi),
          ]);
          const mine = new Map(decided.map((d) => [d.manifestId, d]));
          const theirs = new Map(carriable.map((d) => [d.manifestId, d]));
          const toCarry: string[] = [];
          const toDecide: string[] = [];
          const current: string[] = [];
          for (const image of inRange) {
            if (!full && redecision.counts(mine.get(image.id), counted, image.indexedAt, now)) {
              current.push(image.id);
              if (countCurrent === 'all' || !touched.has(image.repositoryId)) {
                counts.current++;
              }
            } else if (carryFrom !== null && !touched.has(image.repositoryId) && redecision.counts(theirs.get(image.id), carryFrom, image.indexedAt, now)) {
              toCarry.push(image.id);
            } else {
              toDecide.push(image.id);
            }
          }
          if (!carry) {
            left += toCarry.length;
          } else if (carryFrom !== null && toCarry.length > 0) {
            const copied = await redecision.carryOver(db, carryFrom, counted, String(lo), hi, [...current, ...toDecide], now);
            counts.carried += copied.size;
            // Facts changed since they were read: decided instead.
            toDecide.push(...toCarry.filter((id) => !copied.has(id)));
          }
          pending.push(...toDecide);
          await decidePending(false);
          progress.position = lo + RANGE;
          await tick(progress, phase, { images: total });
        }
      } finally {
        if (running === progress) {
          running = null;
        }
      }
    }

    /**
     * Decides the images of the touched repositories that have no decision that counts under the
     * version, a few repositories at a time, through their index: work in proportion to the edit,
     * not to the ledger. False when a newer policy took over.
     */
    async function decideTouched(): Promise<boolean> {
      const repositories = [...touched];
      const progress: PassProgress = { policyVersion: target.version, position: 0n, end: BigInt(repositories.length) };
      running = progress;
      try {
        for (let i = 0; i < repositories.length; i += REPOSITORIES) {
          if (policy !== target) {
            return false;
          }
          const now = new Date();
          const images = await redecision.imagesInRepositories(db, repositories.slice(i, i + REPOSITORIES));
          const mine = new Map((await redecision.decisionsOf(db, target.version, images.map((m) => m.id))).map((d) => [d.manifestId, d]));
          const toDecide = images.filter((m) => !redecision.counts(mine.get(m.id), counted, m.indexedAt, now)).map((m) => m.id);
          counts.current += images.length - toDecide.length;
          for (let j = 0; j < toDecide.length; j += PAGE) {
            counts.decided += await decideUnder([target], toDecide.slice(j, j + PAGE));
          }
          progress.position = BigInt(Math.min(repositories.length, i + REPOSITORIES));
          await tick(progress, 'switch', { repositoriesTouched: repositories.length });
        }
        return true;
      } finally {
        if (running === progress) {
          running = null;
        }
      }
    }

    let complete = true;
    let switchMs: number | null = null;
    if (!restart) {
      // First what API replicas must not answer from the base for: the images the edit touched.
      // Every other image keeps its decision under the base (policies.base_version), read through
      // until the carry below, so that replicas switch after work in proportion to the edit, not
      // to the ledger. (An untouched image whose decision under the base no longer counts is
      // answered as it was under the base until the carry decides it.) An edit of everything, or
      // with no base, decides the whole ledger first.
      const first = carryFrom === null ? (await sweep(true, 'all', 'switch')).complete : await decideTouched();
      complete = first && policy === target;
      const analyze = () =>
        redecision.analyzeDecisions(db).catch((err: unknown) => log.warn({ err }, 'could not ANALYZE decisions: lookups under the new policy may be slow until autovacuum does'));
      if (complete) {
        await redecision.setBase(db, target.version, carryFrom === null ? null : carryFrom.version);
        if (carryFrom === null && counts.decided + counts.carried > 0) {
          // Before replicas switch to it: their lookups under the version are planned from these.
          await analyze();
        }
        complete = await redecision.markComplete(db, target.version, DECIDED_BY);
      }
      if (complete) {
        previous = null;
        switchMs = Math.round(performance.now() - started);
        // API replicas waiting for it switch now (they also poll Postgres: the event is a shortcut).
        await publishEvents(opts.redis, opts.stream, [{ type: 'policy', version: target.version }]).catch((err: unknown) => log.warn({ err }, 'could not announce the switch: replicas find it polling Postgres'));
        log.info({ policyVersion: target.version, kind, base, ...counts, ms: switchMs }, 'ledger decided under the new policy: API replicas switch to it');
        if (carryFrom !== null && counts.decided > 0) {
          // After the switch here: what replicas read of a version with a base (by image id: a
          // miss, a load) is planned through the primary key whatever the statistics say; the
          // rest (GraphQL's lists by version) can wait the second this takes at 10M.
          await analyze();
        }
      }
    }
    if (complete && (kind === 'unchanged' || carryFrom !== null)) {
      // A restart decides what has no decision that counts; after a switch, or at a restart
      // after one, the untouched decisions are carried over from the base, and the base let go.
      // (No ANALYZE after: statistics that take the version for rarer than it now is only make
      // the planner prefer its indexes, which is what reading one image or a page wants.)
      const second = await sweep(passOpts.carry !== false, kind === 'unchanged' ? 'all' : 'untouched', 'carry');
      complete = second.complete && policy === target;
      if (complete && second.left === 0) {
        await redecision.setBase(db, target.version, null);
      }
    }
    for (const k of ['decided', 'carried', 'current'] as const) {
      totals[k] += counts[k];
    }
    const ms = Math.round(performance.now() - started);
    log.info({ policyVersion: target.version, kind, base, ...counts, complete, ms }, complete ? 'ledger re-decided' : 're-decision stopped: a newer policy took over');
    return { policyVersion: target.version, kind, base, ...counts, complete, ms, switchMs };
  }

  return {
    decideExpired,
    get policy() {
      return policy;
    },
    setPolicy(next, nextSource) {
      policy = next;
      source = nextSource;
    },
    decideManifests,
    redecide,
    stats: () => ({ images: { ...totals }, passes: { ...passes }, running: running === null ? null : { policyVersion: running.policyVersion, ratio: ratio(running) } }),
  };
}
