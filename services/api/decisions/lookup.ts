import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import * as decisions from '../../common/db/queries/decisions.ts';
import * as images from '../../common/db/queries/images.ts';
import * as tags from '../../common/db/queries/tags.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import type { Digest } from '../../common/domain/digest.ts';
import type { Decision, DecisionMode, ScopedDecision } from '../../common/domain/decision.ts';
import { formatImageReference, type ImageReference, ImageReferenceError, parseImageReference } from '../../common/domain/image-ref.ts';
import { toSource, type Mirror } from '../../common/domain/mirrors.ts';
import { LearnImageJob } from '../../common/jobs/index-manifest.ts';
import type { Logger } from '../../common/logger.ts';
import { requiredPredicateTypes } from '../../common/policy/attestations.ts';
import { decide } from '../../common/policy/evaluate.ts';
import { namespaceIndex } from '../../common/policy/namespaces.ts';
import type { Policy } from '../../common/policy/policy.ts';
import { BoundedParseCache } from './parsed.ts';
import { type DecisionStore, type Entry, rawDigest, repositoryKey } from './store.ts';
import { isUnreachable, type OutageLog } from '../../common/outage.ts';

/** The answer for one image reference, as every decision endpoint returns it. */
export interface ImageDecision {
  readonly image: string;
  readonly digest: Digest | null;
  readonly allowed: boolean;
  readonly reason: Decision['reason'] | 'invalid_reference';
  readonly message: string;
  readonly signers: Decision['signers'];
  readonly policyVersion: string;
  /** The policy rule that decided (its registry and image-path pattern), when one did. */
  readonly rule?: string | null;
  /** What admission does with this decision when it is a denial (see `DecisionMode`). */
  readonly mode: DecisionMode;
  /** The namespace scope of the policy the answer was given for; null outside every scope. */
  readonly scope: string | null;
  readonly verifiedAt: string | null;
  /** When the decision stops holding by time alone (an attestation condition read the time); null when never. */
  readonly expiresAt?: string | null;
  /**
   * True when this replica may be behind the ledger: its decision feed is down or catching up, or
   * Postgres could not be asked. The answer is still the last one known (never more permissive
   * than it: an image the replica cannot look up is denied).
   */
  readonly stale: boolean;
}

/** What the decision endpoints ask: one image reference (tag or digest), in a namespace → its answer. */
export interface ImageDecisions {
  /** `namespace` picks the policy's scope; absent or null answers outside every scope. */
  lookup(image: string, namespace?: string | null): Promise<ImageDecision>;
}

/** On-demand indexing of images nobody announced: which registries, and how long to wait. */
export interface Learner {
  readonly queue: Queue;
  readonly registries: ReadonlySet<string>;
  readonly waitMs: number;
}

export interface LookupDeps {
  /**
   * The database a miss reads: the read replica when it has replayed all this replica was told,
   * else the primary (see DecisionTable).
   */
  readonly reader: () => Promise<Kysely<DB>>;
  readonly store: DecisionStore;
  /** The policy answers are given under (it changes while the process runs). */
  readonly policy: () => Policy;
  /** Whether the store may be behind the ledger (the ledger feed's word). */
  readonly stale: () => boolean;
  readonly log: Logger;
  /** Where an unreachable ledger is reported (once per interval), instead of a warning per lookup. */
  readonly outage: OutageLog | null;
  readonly learner: Learner | null;
  /** Whether an image the ledger has never seen is allowed (SIGNET_UNKNOWN_IMAGES; deny by default). */
  readonly allowUnknown: boolean;
  /** Mirrors whose images (by digest) are decided as their source registry's (the registries file's `mirrorOf`). */
  readonly mirrors?: readonly Mirror[];
}

/** A reference string as parsed once, with the decision store's keys for it. */
interface Parsed {
  readonly ref: ImageReference;
  readonly repository: string;
  /** The digest's store key, for references by digest; a tag's digest is looked up each time. */
  readonly raw: string | null;
  /**
   * The last answer given for this reference, with what it was built from: given again while the
   * entry (replaced whenever the decision or tag changes), staleness and namespace scope are the
   * same, so a repeated lookup allocates nothing and formats no date.
   */
  last?: { readonly entry: Entry; readonly digest: Digest; readonly stale: boolean; readonly scope: string | null; readonly answer: ImageDecision };
}

const WAIT_POLL_MS = 50;
/** What the parsed-reference cache may hold (an estimate; see {@link BoundedParseCache}). */
const PARSED_BYTES = 16 * 1024 * 1024;

/**
 * Answers image references from the store; a miss falls back to Postgres (and is remembered),
 * deciding from the ledger's stored facts when the image has no decision under the current policy
 * yet. An image the ledger has never seen may be queued for indexing (`Learner`), and the answer
 * waits for it a while. Nothing here calls a registry.
 */
export class DecisionLookup implements ImageDecisions {
  readonly #store: DecisionStore;
  readonly #deps: LookupDeps;
  /**
   * Parsed references of images found, by the exact string admission points send. Bounded by
   * bytes; references nothing is known about are never kept, so a flood of them costs nothing.
   */
  readonly #parsed = new BoundedParseCache<Parsed>(PARSED_BYTES);

  constructor(deps: LookupDeps) {
    this.#store = deps.store;
    this.#deps = deps;
  }

  /** Answers one image reference (tag or digest) under the current policy, in `namespace`'s scope. */
  lookup(image: string, namespace: string | null = null): Promise<ImageDecision> {
    // The hot path: reference parsed before and its decision in memory — no await, no I/O.
    const scope = namespaceIndex(this.#deps.policy()).scopeOf(namespace)?.name ?? null;
    const parsed = this.#parsed.get(image);
    if (parsed !== undefined) {
      const { ref } = parsed;
      const digest = ref.digest ?? this.#store.tag(ref.registry, ref.repository, ref.tag ?? 'latest');
      const entry = digest === undefined ? undefined : this.#store.getByKey(parsed.repository, parsed.raw ?? rawDigest(digest));
      if (digest !== undefined && entry !== undefined) {
        const stale = this.#deps.stale();
        const { last } = parsed;
        // An entry that expires by time (an attestation condition read the clock) is reused only
        // before its expiry: after it, answer() denies the allow, which the cache must not hide.
        const current = entry.expiresAt === undefined || Date.now() < entry.expiresAt;
        if (last !== undefined && current && last.entry === entry && last.digest === digest && last.stale === stale && last.scope === scope) {
          return Promise.resolve(last.answer);
        }
        // Frozen: the same object answers every later lookup, so no caller may change it.
        const a = Object.freeze(answer(image, digest, entry, stale, scope));
        parsed.last = { entry, digest, stale, scope, answer: a };
        return Promise.resolve(a);
      }
    }
    return this.#lookupSlow(image, scope);
  }

  async #lookupSlow(image: string, scope: string | null): Promise<ImageDecision> {
    let ref;
    try {
      // A mirror's image by digest is the source's image: decided from the source's ledger entry.
      ref = toSource(parseImageReference(image), this.#deps.mirrors ?? []);
    } catch (err) {
      const message = err instanceof ImageReferenceError ? err.message : 'invalid image reference';
      const policy = this.#deps.policy();
      const mode = (scope === null ? null : policy.scopes.find((s) => s.name === scope)?.mode) ?? policy.mode;
      return { image, digest: null, allowed: false, reason: 'invalid_reference', message, signers: [], policyVersion: policy.version, mode, scope, verifiedAt: null, stale: false };
    }
    const reference = ref.digest ?? ref.tag ?? 'latest';
    let known;
    try {
      known = await this.#known(ref.registry, ref.repository, ref.digest, reference);
    } catch (err) {
      // Postgres is unreachable and the answer is not in memory: deny, and say why. Never allow on an error.
      if (this.#deps.outage !== null && isUnreachable(err)) {
        this.#deps.outage.error(err as Error, 'decision lookup');
      } else {
        this.#deps.log.warn({ err, image }, 'ledger unreachable for a lookup not in memory');
      }
      const policy = this.#deps.policy();
      // The denial is the rule's like any other: its mode (an audit namespace stays unbroken by an outage) and its name.
      const { mode, rule } = inScope(decide(policy, ref.registry, ref.repository, null), scope);
      return {
        image,
        digest: ref.digest,
        allowed: false,
        reason: 'unknown',
        message: `${formatImageReference(ref)} is not in this replica's memory and the ledger is unreachable`,
        signers: [],
        policyVersion: policy.version,
        rule,
        mode,
        scope,
        verifiedAt: null,
        stale: true,
      };
    }
    if (known !== null) {
      this.#parsed.set(image, { ref, repository: repositoryKey(ref.registry, ref.repository), raw: ref.digest === null ? null : rawDigest(ref.digest) });
      return answer(image, known.digest, known.entry, this.#deps.stale(), scope);
    }
    return this.#notInLedger(image, ref, reference, scope);
  }

  /**
   * Not in the ledger: the policy may still answer (allow_without_verification, not covered);
   * otherwise `unknown`, which is a denial — unless learning the image brings it in meanwhile.
   */
  async #notInLedger(image: string, ref: ImageReference, reference: string, scope: string | null): Promise<ImageDecision> {
    const { registry, repository, digest } = ref;
    const decided = decide(this.#deps.policy(), registry, repository, null);
    const d = { ...inScope(decided, scope), policyVersion: decided.policyVersion, scope };
    if (d.reason === 'unknown' && (await this.#learn(registry, repository, reference))) {
      const deadline = Date.now() + (this.#deps.learner?.waitMs ?? 0);
      while (Date.now() < deadline) {
        await sleep(WAIT_POLL_MS);
        const learnt = await this.#known(registry, repository, digest, reference);
        if (learnt !== null) {
          return answer(image, learnt.digest, learnt.entry, this.#deps.stale(), scope);
        }
      }
    }
    if (d.reason !== 'unknown') {
      return { image, digest, ...d, verifiedAt: null, stale: this.#deps.stale() };
    }
    const { allowUnknown } = this.#deps;
    // Say how to get it indexed: the two ways in are notifications and a crawl.
    const message =
      `${formatImageReference(ref)} has not been indexed by Signet: point ${registry}'s push notifications at Signet's ` +
      `/webhooks/<source>, or run \`signet backfill ${registry}/${repository}\``;
    return {
      image,
      digest,
      ...d,
      allowed: allowUnknown,
      verifiedAt: null,
      stale: this.#deps.stale(),
      message: allowUnknown ? `${message}; allowed because SIGNET_UNKNOWN_IMAGES=allow` : message,
    };
  }

  async #known(registry: string, repository: string, digest: Digest | null, reference: string): Promise<{ digest: Digest; entry: Entry } | null> {
    // Which database a miss reads is chosen once, and only when memory cannot answer.
    let chosen: Promise<Kysely<DB>> | null = null;
    const db = () => (chosen ??= this.#deps.reader());
    const resolved = digest ?? (await this.#resolveTag(db, registry, repository, reference));
    const entry = resolved === null ? null : await this.#find(db, registry, repository, resolved);
    return entry === null || resolved === null ? null : { digest: resolved, entry };
  }

  /** Enqueues indexing of an unknown image if its registry is one Signet may learn from. */
  async #learn(registry: string, repository: string, reference: string): Promise<boolean> {
    const { learner, log } = this.#deps;
    if (learner === null || !learner.registries.has(registry)) {
      return false;
    }
    const data = LearnImageJob.schema.parse({ registry, repository, reference });
    try {
      await learner.queue.add(LearnImageJob.name, data, { ...LearnImageJob.options, jobId: LearnImageJob.jobId(data) });
      return true;
    } catch (err) {
      log.warn({ err, registry, repository }, 'could not enqueue an unknown image for indexing');
      return false;
    }
  }

  async #resolveTag(db: () => Promise<Kysely<DB>>, registry: string, repository: string, tag: string): Promise<Digest | null> {
    const known = this.#store.tag(registry, repository, tag);
    if (known !== undefined) {
      return known;
    }
    const found = await tags.find(await db(), registry, repository, tag);
    if (found !== null) {
      this.#store.setTag(registry, repository, tag, found);
    }
    return found;
  }

  /** The decision for a digest: from memory, else Postgres, else decided from its stored facts. */
  async #find(reader: () => Promise<Kysely<DB>>, registry: string, repository: string, digest: Digest): Promise<Entry | null> {
    const known = this.#store.get(registry, repository, digest);
    if (known !== undefined) {
      return known;
    }
    const db = await reader();
    const policy = this.#deps.policy();
    const stored = await decisions.find(db, policy.version, registry, repository, digest);
    let entry: Entry | null = stored === null ? null : this.#store.entry(stored, stored.verifiedAt);
    if (entry === null) {
      // Indexed but not (yet) decided under this policy: decide from the stored facts.
      const id = await images.findId(db, registry, repository, digest);
      const [input] = id === null ? [] : await decisions.loadInputs(db, [id], requiredPredicateTypes(policy));
      if (input === undefined) {
        return null;
      }
      entry = this.#store.entry(decide(policy, registry, repository, input.facts), input.verifiedAt);
    }
    // The policy changed meanwhile: this decision belongs to the old one, do not keep it.
    if (policy === this.#deps.policy()) {
      this.#store.set(registry, repository, digest, entry);
    }
    return entry;
  }
}

/** The decision in `scope`'s namespaces: the scope's own where it differs, else the one everywhere else. */
function inScope(d: Decision, scope: string | null): ScopedDecision {
  const s = scope === null ? undefined : d.scoped?.[scope];
  return s ?? { allowed: d.allowed, reason: d.reason, message: d.message, signers: d.signers, rule: d.rule, mode: d.mode };
}

function answer(image: string, digest: Digest, entry: Entry, stale: boolean, scope: string | null): ImageDecision {
  const d = inScope(entry.decision, scope);
  const verifiedAt = new Date(entry.verifiedAt).toISOString();
  const common = { image, ...d, policyVersion: entry.decision.policyVersion, scope, digest, verifiedAt, stale };
  if (entry.expiresAt === undefined) {
    return { ...common, expiresAt: null };
  }
  const expiresAt = new Date(entry.expiresAt).toISOString();
  if (d.allowed && Date.now() >= entry.expiresAt) {
    // The worker decides it again at its expiry (the earliest of all its scoped variants'); until
    // this replica hears the new decision, an allow that time has run out on is not given (a scan
    // too old is no scan).
    const message = `the decision expired at ${expiresAt} (an attestation condition depends on time) and has not been made again yet`;
    return { ...common, allowed: false, reason: 'attestation_failed', message, signers: [], expiresAt };
  }
  return { ...common, expiresAt };
}
