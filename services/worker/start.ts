import { isUnreachable } from '../common/outage.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue, Worker } from 'bullmq';
import type { RedisClient } from '../common/redis.ts';
import { type Announce, announcer, ledgerStream } from '../common/events.ts';
import { JOBS } from '../common/jobs/catalog.ts';
import { addJob } from '../common/jobs/define-job.ts';
import { INDEX_QUEUE, IndexManifestJob, type IndexManifestData } from '../common/jobs/index-manifest.ts';
import { ALERTS_QUEUE } from '../common/jobs/notify-ownership-change.ts';
import { MAINTENANCE_QUEUE } from '../common/jobs/prune-deliveries.ts';
import { EXPIRY_QUEUE, RedecideExpiredJob } from '../common/jobs/redecide-expired.ts';
import { RECONCILE_QUEUE } from '../common/jobs/reconcile.ts';
import type { Logger } from '../common/logger.ts';
import type { Platform } from '../common/platform.ts';
import type { LoadedPolicy } from '../common/policy/load.ts';
import type { Policy } from '../common/policy/policy.ts';
import { createDecider, type Decider } from '../core/decider.ts';
import { loadConfiguredCredentials, registryClientFromConfig } from '../core/oci/from-config.ts';
import { createOwnershipAnnouncer, type OwnershipAnnouncer } from '../core/ownership.ts';
import { reverifyLedger } from '../core/reverify.ts';
import { createCachingVerifier, type CachingChecks, type VerificationCacheStats } from '../core/verification/cache.ts';
import { createVerifierFromConfig, type ConfiguredVerifier } from '../core/verification/from-config.ts';
import { trustExpiry } from '../core/verification/trust.ts';
import { startTufRefresher } from '../core/verification/tuf.ts';
import { indexManifestJob } from './jobs/index-manifest.job.ts';
import { learnImageJob } from './jobs/learn-image.job.ts';
import { notifyOwnershipChangeJob } from './jobs/notify-ownership-change.job.ts';
import { pruneAdmissionsJob } from './jobs/prune-admissions.job.ts';
import { prunePolicyVersionsJob } from './jobs/prune-policy-versions.job.ts';
import { pruneDeliveriesJob } from './jobs/prune-deliveries.job.ts';
import { redecideExpiredJob } from './jobs/redecide-expired.job.ts';
import { reconcileJob } from './jobs/reconcile.job.ts';
import { resolveTagJob } from './jobs/resolve-tag.job.ts';
import { startJobWorker, type JobImplementation } from './kit.ts';
import { scheduleAdmissionPrune, scheduleDeliveryPrune, schedulePolicyVersionPrune, scheduleReconciliation } from './schedule.ts';

/** How long a failed re-decision pass waits before it is tried again. */
const REDECIDE_RETRY_MS = 30_000;

export interface WorkerRole {
  readonly worker: Worker;
  verificationCache(): VerificationCacheStats;
  /** Settles when the start-up re-verification and re-decision of the ledger is done: the images decided. */
  readonly redecided: Promise<number>;
  /** A new policy: trust the keys it names, re-verify what they can verify, re-decide what it changes. */
  setPolicy(next: LoadedPolicy): Promise<number>;
}

/**
 * The verifier of the configured trust and the policy's keys, refreshed over TUF in the background,
 * behind the per-process verification cache; verifying on SIGNET_VERIFY_THREADS threads (the
 * verification pool), so one worker process verifies on several cores, or on its own thread when 0.
 * The pool stops once the job consumers have drained.
 */
async function startVerifier(platform: Platform, policy: Policy): Promise<{ trusted: ConfiguredVerifier; verifier: CachingChecks }> {
  const { config, log } = platform;
  const trusted = await createVerifierFromConfig(config, policy, { threads: config.verification.threads });
  platform.onShutdown('queues', 'verification-pool', () => trusted.close());
  log.info(
    { trustedRoots: trusted.roots.map((r) => ({ path: r.path, version: r.version })), trustedKeys: trusted.keyCount, verificationThreads: trusted.threads },
    'trust loaded',
  );
  if (config.verification.tuf !== null) {
    const tuf = startTufRefresher({ ...config.verification.tuf, timeoutMs: config.registry.timeoutMs }, log.child({ component: 'tuf' }), (root) =>
      trusted.setTufRoot(root),
    );
    platform.onShutdown('consumers', 'tuf', () => Promise.resolve(tuf.stop()));
  }
  const verifier = createCachingVerifier(trusted.checks);
  observeTrustExpiry(platform, trusted);
  platform.metrics.counterOf('signet_verification_cache_lookups_total', 'Verification cache lookups by result (hit, miss).', 'result', () => {
    const s = verifier.stats();
    return { hit: s.hits, miss: s.misses };
  });
  return { trusted, verifier };
}

/** Seconds until the earliest key material of each trusted root in force stops being usable, per kind. */
function observeTrustExpiry(platform: Platform, trusted: ConfiguredVerifier): void {
  platform.metrics.gauge(
    'signet_trust_root_expiry_seconds',
    'Seconds until the earliest certificate authority, transparency log, CT log or TSA key still in force in a trusted root expires (negative: expired), by root and kind; kinds that never expire are absent.',
    ['root', 'kind'],
    (g) => {
      g.reset();
      const now = new Date();
      for (const loaded of trusted.loadedRoots()) {
        for (const [kind, end] of Object.entries(trustExpiry(loaded.root, now))) {
          g.set({ root: loaded.path, kind }, Math.round((end.getTime() - now.getTime()) / 1000));
        }
      }
    },
  );
}

/** Drift alerts to SIGNET_ALERT_WEBHOOK_URL, when it is set: the queue the announcer feeds, and its consumer. */
function startAlerts(platform: Platform, publisher: RedisClient): Queue | null {
  const { config, log, db } = platform;
  if (config.alerts.webhookUrl === null) {
    return null;
  }
  const alerts = platform.queue(ALERTS_QUEUE, publisher, { observe: true, label: 'alerts' });
  const consumer = startJobWorker(ALERTS_QUEUE, [notifyOwnershipChangeJob({ db, url: config.alerts.webhookUrl, timeoutMs: config.registry.timeoutMs })], {
    connection: platform.redis('worker', 'alert'),
    prefix: config.redis.queuePrefix,
    concurrency: 2,
    lockMs: 30_000,
    log: log.child({ component: 'alerts' }),
    metrics: platform.metrics,
    defined: JOBS,
    postgresOutage: platform.postgresOutage,
    onError: (err) => platform.redisOutage.error(err, 'alert worker'),
  });
  platform.onShutdown('consumers', 'alert-worker', () => consumer.close());
  return alerts;
}

/** The scheduled reconciliation crawl, which queues index jobs for what notifications missed and records tag moves. */
function startReconciliation(
  platform: Platform,
  enqueueIndex: (data: IndexManifestData) => Promise<string>,
  announce: Announce,
  credentials: Parameters<typeof registryClientFromConfig>[1],
): void {
  const { config, db } = platform;
  const log = platform.log.child({ component: 'reconcile' });
  // A worker-role connection: commands wait for Redis rather than fail, so start never depends on it.
  const connection = platform.redis('worker', 'reconcile');
  const registries = config.registries.filter((r) => r.reconcile).map((r) => r.host);
  const queue = platform.queue(RECONCILE_QUEUE, connection, { label: 'reconcile' });
  if (!scheduleReconciliation(queue, { intervalMs: config.reconcile.intervalMs, registries, log })) {
    return;
  }
  const registry = registryClientFromConfig(config, credentials, platform.log);
  startPassConsumer(platform, queue.name, connection, [reconcileJob({ db, registry, enqueueIndex, announce, log }, registries, config.crawl)], log);
}

/**
 * The retentions of webhook deliveries (SIGNET_DELIVERY_RETENTION), admission records
 * (SIGNET_ADMISSION_RETENTION) and retired policy versions' decisions
 * (SIGNET_POLICY_VERSION_RETENTION): scheduled passes on the maintenance queue. Job schedulers rather
 * than a timer per process: one pass per interval whatever the number of worker replicas, with the
 * job kit's logs and metrics.
 */
function startMaintenance(platform: Platform): void {
  const { config, db } = platform;
  const log = platform.log.child({ component: 'retention' });
  const connection = platform.redis('worker', 'maintenance');
  const queue = platform.queue(MAINTENANCE_QUEUE, connection, { label: 'maintenance' });
  const deliveries = config.deliveries.retentionMs;
  const records = config.admissions.retentionMs;
  const versions = config.policyVersions.retentionMs;
  const scheduled = [
    scheduleDeliveryPrune(queue, { retentionMs: deliveries, log }),
    scheduleAdmissionPrune(queue, { retentionMs: records, log }),
    schedulePolicyVersionPrune(queue, { retentionMs: versions, log }),
  ];
  if (!scheduled.includes(true)) {
    return;
  }
  // Every job of the queue needs its handler; a retention of 0 schedules no pass for it.
  startPassConsumer(
    platform,
    queue.name,
    connection,
    [pruneDeliveriesJob({ db, retentionMs: deliveries }), pruneAdmissionsJob({ db, retentionMs: records }), prunePolicyVersionsJob({ db, retentionMs: versions })],
    log,
  );
}

/** Re-decides expiring decisions (delayed `redecide-expired` jobs the decider queues). */
function startExpiryConsumer(platform: Platform, decider: Decider): void {
  const consumer = startJobWorker(EXPIRY_QUEUE, [redecideExpiredJob({ decider })], {
    connection: platform.redis('worker', 'expiry'),
    prefix: platform.config.redis.queuePrefix,
    concurrency: 1,
    lockMs: 60_000,
    log: platform.log.child({ component: 'expiry' }),
    metrics: platform.metrics,
    defined: JOBS,
    onError: (err) => platform.redisOutage.error(err, 'expiry worker'),
  });
  platform.onShutdown('consumers', 'expiry-worker', () => consumer.close());
}

/**
 * The consumer of scheduled passes (reconciliation, the retention prunes): one pass at a time, a long
 * lock (a pass runs for minutes), drained at shutdown.
 */
function startPassConsumer(platform: Platform, queue: string, connection: RedisClient, implementations: readonly JobImplementation[], log: Logger): void {
  const consumer = startJobWorker(queue, implementations, {
    connection,
    prefix: platform.config.redis.queuePrefix,
    concurrency: 1,
    lockMs: 120_000,
    log,
    metrics: platform.metrics,
    defined: JOBS,
    postgresOutage: platform.postgresOutage,
    onError: (err) => platform.redisOutage.error(err, `${queue} worker`),
  });
  platform.onShutdown('consumers', `${queue}-worker`, () => consumer.close());
}

/**
 * Re-verifies what the policy's keys can verify, then brings the ledger's decisions up to the
 * policy in force, in the background: at start (only images without a decision under it, unless
 * the policy changed while Signet was down) and on every policy change (only images the edit
 * touched; see Decider.redecide), where the decider switches policy between the two. A failed
 * pass is logged and tried again; the decisions in force stay meanwhile. Resolves to the images decided.
 */
function ledgerRefresher(platform: Platform, verifier: CachingChecks, ownership: OwnershipAnnouncer, decider: Decider) {
  const { log, db } = platform;
  let stopping = false;
  platform.onShutdown('consumers', 'redecide', () => Promise.resolve((stopping = true)));
  // A failed pass is tried again while its policy is in force: API replicas wait for it to
  // complete before they switch to the new policy.
  const redecide = async (): Promise<number> => {
    const target = decider.policy;
    for (let attempt = 1; ; attempt++) {
      try {
        return (await decider.redecide()).decided;
      } catch (err) {
        if (isUnreachable(err)) {
          // The ledger is down: said by the one account of Postgres outages, as failing jobs are.
          platform.postgresOutage.error(err as Error, 're-decision');
        } else {
          log.error({ err, attempt, retryInMs: REDECIDE_RETRY_MS }, 're-deciding the ledger failed; trying again');
        }
        await sleep(REDECIDE_RETRY_MS, undefined, { ref: false });
        if (stopping || decider.policy !== target) {
          return 0;
        }
      }
    }
  };
  const reverify = async () => {
    const reverified = await reverifyLedger(db, verifier, ownership, { onlyUntrustedKeys: true });
    if (reverified.manifestIds.length > 0) {
      log.info({ manifests: reverified.manifestIds.length }, 're-verified stored key signatures with the keys the policy names');
    }
  };
  return {
    atStart: () =>
      reverify().then(redecide, (err: unknown) => {
        log.error({ err }, 're-verification failed');
        return redecide();
      }),
    async onPolicy(next: LoadedPolicy) {
      await reverify();
      decider.setPolicy(next.policy, next.source);
      return redecide();
    },
  };
}

/** The decider's passes on `/metrics`: images by what was done with them, passes by kind, the pass under way. */
function observeRedecision(platform: Platform, decider: Decider): void {
  const { metrics } = platform;
  metrics.counterOf(
    'signet_redecide_images_total',
    'Images a re-decision pass (worker start, policy change) went over, by action: decided (evaluated and stored), carried_over (untouched by the policy edit: the previous version\'s decision copied), already_decided (had a current decision under the policy in force).',
    'action',
    () => {
      const { images } = decider.stats();
      return { decided: images.decided, carried_over: images.carried, already_decided: images.current };
    },
  );
  metrics.counterOf('signet_redecide_passes_total', 'Re-decision passes started, by kind: unchanged (restart), incremental (a policy edit attributed to rules), full.', 'kind', () => decider.stats().passes);
  metrics.gauge('signet_redecide_progress_ratio', 'Share of the ledger (by image id) the re-decision pass under way went over; 1 when none runs.', [], (g) => {
    g.set(decider.stats().running?.ratio ?? 1);
  });
}

/**
 * The worker role: consumes the index queue (pushes, signature pushes, tags to resolve, images to
 * learn), runs the reconciliation schedule, the delivery retention and the drift alerts, and keeps
 * the ledger decided under the policy in force.
 */
export async function startWorkerRole(platform: Platform, loaded: LoadedPolicy): Promise<WorkerRole> {
  const { config, log, db, metrics } = platform;
  const [{ trusted, verifier }, credentials] = await Promise.all([startVerifier(platform, loaded.policy), loadConfiguredCredentials(config)]);
  const connection = platform.redis('worker', 'worker');
  const publisher = platform.redis('producer', 'publisher');
  // Resolved tags and reconciliation crawls queue index jobs like ingest does.
  const indexQueue = platform.queue(INDEX_QUEUE, publisher, { observe: true, label: 'index' });
  const enqueueIndex = (data: IndexManifestData) => addJob(indexQueue, IndexManifestJob, data);
  const prefix = config.redis.queuePrefix;
  const stream = ledgerStream(config.redis);
  // Ledger events wait for Redis rather than fail (a worker-role connection): an event dropped
  // during an outage would never reach replicas that resume the feed without a reload.
  const feedPublisher = platform.redis('worker', 'feed-publisher');
  const announce = announcer(feedPublisher, stream, log.child({ component: 'tags' }));
  const expiry = platform.queue(EXPIRY_QUEUE, publisher, { observe: true, label: 'expiry' });
  const scheduleExpiry = async (at: Date) => {
    await addJob(expiry, RedecideExpiredJob, { at: at.getTime() }, at.getTime() - Date.now());
  };
  const decider = createDecider({ db, redis: feedPublisher, stream, policy: loaded.policy, policySource: loaded.source, log: log.child({ component: 'decider' }), scheduleExpiry });
  startExpiryConsumer(platform, decider);
  observeRedecision(platform, decider);
  const alerts = startAlerts(platform, publisher);
  const ownership = createOwnershipAnnouncer({ db, redis: feedPublisher, stream, alerts, log: log.child({ component: 'ownership' }) });
  void ownership.sweep().then(
    (n) => n > 0 && log.info({ alerts: n }, 'queued undelivered ownership alerts'),
    (err: unknown) => log.warn({ err }, 'could not sweep undelivered ownership alerts'),
  );
  const onRequest = (host: string, status: number | 'error') => metrics.registryRequests.inc({ registry: host, status: String(status) });
  const deps = {
    db,
    registry: registryClientFromConfig(config, credentials, log, onRequest),
    verifier,
    metrics,
    maxPayloadBytes: config.verification.maxPayloadBytes,
    decider,
    ownership,
    enqueueIndex,
    announce,
    signaturesRepositories: new Map(config.registries.flatMap((r) => (r.signaturesRepository === null ? [] : [[r.host, r.signaturesRepository] as const]))),
  };
  const index = startJobWorker(INDEX_QUEUE, [indexManifestJob(deps), learnImageJob(deps), resolveTagJob(deps)], {
    connection,
    prefix,
    concurrency: config.worker.concurrency,
    lockMs: config.worker.lockMs,
    log: log.child({ component: 'worker' }),
    metrics,
    defined: JOBS,
    postgresOutage: platform.postgresOutage,
    onError: (err) => platform.redisOutage.error(err, 'index worker'),
  });
  // close() waits for active jobs to finish; the shutdown deadline bounds it.
  platform.onShutdown('consumers', 'worker', () => index.close());
  startReconciliation(platform, enqueueIndex, announce, credentials);
  startMaintenance(platform);
  platform.checks.push({ name: 'redis', check: () => connection.ping() });
  const refresh = ledgerRefresher(platform, verifier, ownership, decider);
  return {
    worker: index.worker,
    verificationCache: () => verifier.stats(),
    redecided: refresh.atStart(),
    setPolicy(next) {
      trusted.setPolicy(next.policy);
      return refresh.onPolicy(next);
    },
  };
}
