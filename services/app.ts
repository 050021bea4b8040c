import { unwatchFile, watchFile } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { Queue, type Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { DecisionTable, type Learner } from './api/decision-table.ts';
import { registerGraphql } from './api/graphql/yoga.ts';
import { registerQueueDashboard } from './api/queue-dashboard.ts';
import { registerApiRoutes } from './api/server.ts';
import { registerUi } from './api/ui.ts';
import type { Config } from './common/config.ts';
import { createDb, type Db } from './common/db/client.ts';
import { ensureDatabase, isConnectionError, migrateToLatest } from './common/db/migrate.ts';
import { createHttpServer, type ReadinessCheck } from './common/http.ts';
import { createMetrics } from './common/metrics.ts';
import { registerMetrics } from './common/metrics-routes.ts';
import { WEBHOOK_SOURCES } from './common/domain/registry-event.ts';
import { addJob } from './common/jobs/define-job.ts';
import { INDEX_QUEUE, IndexManifestJob, type IndexManifestData } from './common/jobs/index-manifest.ts';
import type { Logger } from './common/logger.ts';
import { loadPolicy } from './common/policy/load.ts';
import type { Policy } from './common/policy/policy.ts';
import { createRedis } from './common/redis.ts';
import type { ShutdownStep } from './common/shutdown.ts';
import { registerIngestRoutes } from './ingest/server.ts';
import { createDecider } from './core/decider.ts';
import { hostAllowlist } from './common/domain/host-allowlist.ts';
import { ALERTS_QUEUE } from './common/jobs/notify-ownership-change.ts';
import { loadConfiguredCredentials, registryClientFromConfig } from './core/oci/from-config.ts';
import { createOwnershipAnnouncer, startAlertWorker } from './core/ownership.ts';
import { reverifyLedger } from './core/reverify.ts';
import { createCachingVerifier, type VerificationCacheStats } from './core/verification/cache.ts';
import { loadTrustedKeys, loadTrustedRoots, policyKeys, type LoadedTrustedRoot } from './core/verification/trust.ts';
import { startTufRefresher } from './core/verification/tuf.ts';
import { createSignatureVerifier } from './core/verification/verifier.ts';
import { startReconciler } from './worker/reconcile/schedule.ts';
import { startIndexWorker } from './worker/worker.ts';

export interface Signet {
  readonly app: FastifyInstance;
  readonly db: Db;
  /** The index queue when this process runs ingest (the producer side). */
  readonly queue: Queue | null;
  readonly worker: Worker | null;
  /** Hits and misses of the worker's verification cache (null without the worker role). */
  verificationCache(): VerificationCacheStats | null;
  readonly policy: Policy;
  /** Settles when the start-up re-decision of the ledger (worker role) is done. */
  readonly redecided: Promise<number>;
  /**
   * Re-reads SIGNET_POLICY. A new version re-decides the ledger (worker) and switches the decision
   * table (api); an invalid file is logged and the policy in force stays. Resolves to the version
   * in force afterwards.
   */
  reloadPolicy(): Promise<string>;
  /** Base URL once listening, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Ordered shutdown: HTTP intake, worker (drains active jobs), queue, Redis, Postgres. */
  readonly shutdownSteps: readonly ShutdownStep[];
}

/** About a minute of waiting for Postgres at start-up (backoff 0.5 s doubling to 5 s). */
const STARTUP_DB_ATTEMPTS = 15;

/**
 * Builds and starts the roles in `config.roles` on one HTTP server: creates and migrates the
 * database, loads trust material, connects Redis, starts the worker and listens. Used by main.ts
 * and, with a test configuration, by the integration tests.
 */
export async function startSignet(config: Config, log: Logger): Promise<Signet> {
  const roles = new Set(config.roles);
  const db = createDb(config.database.url, log);
  // Postgres may be restarting while Signet starts (or restarts): wait for it rather than exit.
  for (let attempt = 1; ; attempt++) {
    try {
      if (await ensureDatabase(config.database.url)) {
        log.info('created the database');
      }
      const applied = await migrateToLatest(db);
      if (applied.length > 0) {
        log.info({ applied }, 'applied migrations');
      }
      break;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      if (attempt >= STARTUP_DB_ATTEMPTS || !isConnectionError(cause)) {
        await db.destroy();
        throw err;
      }
      log.warn({ err: cause, attempt }, 'waiting for Postgres');
      await sleep(Math.min(5_000, 250 * 2 ** attempt));
    }
  }

  const { policy, source: policySource } = await loadPolicy(config.policyPath);
  log.info({ policy: config.policyPath, policyVersion: policy.version }, 'policy loaded');

  const steps: ShutdownStep[] = [];
  // An API-only replica answers decisions from memory without Postgres: degraded, still ready.
  const apiOnly = roles.has('api') && !roles.has('ingest') && !roles.has('worker');
  const checks: ReadinessCheck[] = [{ name: 'postgres', check: () => sql`SELECT 1`.execute(db), degradable: apiOnly }];
  const tls = config.http.tls;
  const app = createHttpServer(
    log,
    checks,
    tls === null
      ? null
      : {
          cert: await readFile(tls.certPath),
          key: await readFile(tls.keyPath),
          clientCa: tls.clientCaPath === null ? null : await readFile(tls.clientCaPath),
        },
  );
  steps.push({ name: 'http', run: () => app.close() });
  const metrics = createMetrics();
  registerMetrics(app, metrics);
  /** Queues whose job counts `/metrics` reports (each queue name once). */
  const observedQueues = new Map<string, Queue>();

  let worker: Worker | null = null;
  let redecided: Promise<number> = Promise.resolve(0);
  let current = policy;
  const onPolicy: ((policy: Policy, source: string) => Promise<unknown>)[] = [];
  let queue: Queue | null = null;
  let cacheStats: () => VerificationCacheStats | null = () => null;
  if (roles.has('worker')) {
    const [trust, trustedKeys, credentials] = await Promise.all([
      loadTrustedRoots(config.verification.trustedRootPaths),
      loadTrustedKeys(config.verification.trustedKeysDir),
      loadConfiguredCredentials(config),
    ]);
    log.info(
      { trustedRoots: trust.map((t) => ({ path: t.path, version: t.version })), trustedKeys: trustedKeys.map((k) => k.name) },
      'trust loaded',
    );
    const connection = createRedis(config.redis.url, 'worker', log);
    const publisher = createRedis(config.redis.url, 'producer', log);
    // Keys a policy names are trusted for verification too: the policy decides what they may sign.
    // The verifier is rebuilt when the policy changes; jobs always use the current one.
    // A root refreshed over TUF (SIGNET_TUF_*) is tried before the files, which stay as the fallback.
    let tufRoot: LoadedTrustedRoot | null = null;
    let currentPolicy = policy;
    const buildVerifier = () =>
      createSignatureVerifier(
        [...(tufRoot === null ? [] : [tufRoot]), ...trust.filter((t) => t.version !== tufRoot?.version)],
        [...trustedKeys, ...policyKeys(currentPolicy)],
      );
    let currentVerifier = buildVerifier();
    if (config.verification.tuf !== null) {
      const tuf = startTufRefresher({ ...config.verification.tuf, timeoutMs: config.registry.timeoutMs }, log.child({ component: 'tuf' }), (root) => {
        tufRoot = root;
        currentVerifier = buildVerifier();
      });
      steps.push({ name: 'tuf', run: () => Promise.resolve(tuf.stop()) });
    }
    const verifier = createCachingVerifier({
      get version() {
        return currentVerifier.version;
      },
      get trustRootVersion() {
        return currentVerifier.trustRootVersion;
      },
      get roots() {
        return currentVerifier.roots;
      },
      verifyCosignLayer: (layer, subject, expected) => currentVerifier.verifyCosignLayer(layer, subject, expected),
      verifyCosignAttestation: (layer, subject, expected) => currentVerifier.verifyCosignAttestation(layer, subject, expected),
      verifyBundle: (bundle, subject, expected) => currentVerifier.verifyBundle(bundle, subject, expected),
    });
    cacheStats = () => verifier.stats();
    metrics.gauge('signet_verification_cache_lookups', 'Verification cache lookups since start, by result (hit, miss).', ['result'], (g) => {
      const s = verifier.stats();
      g.set({ result: 'hit' }, s.hits);
      g.set({ result: 'miss' }, s.misses);
    });
    // Resolved tags and reconciliation crawls queue index jobs like ingest does.
    const indexQueue = new Queue(INDEX_QUEUE, { connection: publisher, prefix: config.redis.queuePrefix });
    observedQueues.set(INDEX_QUEUE, indexQueue);
    indexQueue.on('error', (err) => log.warn({ err }, 'queue error'));
    const enqueueIndex = (data: IndexManifestData) => addJob(indexQueue, IndexManifestJob, data);
    const decider = createDecider({ db, redis: publisher, prefix: config.redis.queuePrefix, policy, policySource, log: log.child({ component: 'decider' }) });
    let alerts: Queue | null = null;
    if (config.alerts.webhookUrl !== null) {
      alerts = new Queue(ALERTS_QUEUE, { connection: publisher, prefix: config.redis.queuePrefix });
      observedQueues.set(ALERTS_QUEUE, alerts);
      alerts.on('error', (err) => log.warn({ err }, 'alerts queue error'));
      const alertConnection = createRedis(config.redis.url, 'worker', log);
      const alertWorker = startAlertWorker({
        db,
        url: config.alerts.webhookUrl,
        timeoutMs: config.registry.timeoutMs,
        connection: alertConnection,
        prefix: config.redis.queuePrefix,
        log: log.child({ component: 'alerts' }),
      });
      const queued = alerts;
      steps.push({ name: 'alert-worker', run: () => alertWorker.close() });
      steps.push({ name: 'alerts-queue', run: () => queued.close() });
      steps.push({ name: 'alert-redis', run: () => alertConnection.quit() });
    }
    const ownership = createOwnershipAnnouncer({ db, redis: publisher, prefix: config.redis.queuePrefix, alerts, log: log.child({ component: 'ownership' }) });
    void ownership.sweep().then(
      (n) => n > 0 && log.info({ alerts: n }, 'queued undelivered ownership alerts'),
      (err: unknown) => log.warn({ err }, 'could not sweep undelivered ownership alerts'),
    );
    worker = startIndexWorker(
      {
        db,
        registry: registryClientFromConfig(config, credentials, log, (host, status) => metrics.registryRequests.inc({ registry: host, status: String(status) })),
        verifier,
        metrics,
        maxPayloadBytes: config.verification.maxPayloadBytes,
        decider,
        ownership,
        enqueueIndex,
      },
      { connection, prefix: config.redis.queuePrefix, concurrency: config.worker.concurrency, lockMs: config.worker.lockMs, log: log.child({ component: 'worker' }), metrics },
    );
    // worker.close() waits for active jobs to finish; the shutdown deadline bounds it.
    const started = worker;
    steps.push({ name: 'worker', run: () => started.close() });
    const reconcileConnection = createRedis(config.redis.url, 'worker', log);
    const reconciler = startReconciler(
      { db, registry: registryClientFromConfig(config, credentials, log), enqueueIndex, log: log.child({ component: 'reconcile' }) },
      {
        connection: reconcileConnection,
        prefix: config.redis.queuePrefix,
        intervalMs: config.reconcile.intervalMs,
        registries: config.registries.filter((r) => r.reconcile).map((r) => r.host),
        log: log.child({ component: 'reconcile' }),
      },
    );
    steps.push({ name: 'reconciler', run: () => reconciler.close() });
    steps.push({ name: 'reconcile-redis', run: () => reconcileConnection.quit() });
    steps.push({ name: 'index-queue', run: () => indexQueue.close() });
    steps.push({ name: 'worker-redis', run: () => connection.quit() });
    steps.push({ name: 'publisher-redis', run: () => publisher.quit() });
    checks.push({ name: 'redis', check: () => connection.ping() });
    // Decisions under a new policy are recomputed from stored material in the background.
    const redecide = () =>
      decider.redecideAll().catch((err: unknown) => {
        log.error({ err }, 're-deciding the ledger failed');
        return 0;
      });
    const reverify = async () => {
      const reverified = await reverifyLedger(db, verifier, ownership, { onlyUntrustedKeys: true });
      if (reverified.manifestIds.length > 0) {
        log.info({ manifests: reverified.manifestIds.length }, 're-verified stored key signatures with the keys the policy names');
      }
    };
    // At start (the policy may have changed while Signet was down) and on every policy change:
    // re-verify what new keys can verify, then re-decide the ledger.
    redecided = reverify().then(redecide, (err: unknown) => {
      log.error({ err }, 're-verification failed');
      return redecide();
    });
    onPolicy.push(async (next, source) => {
      currentPolicy = next;
      currentVerifier = buildVerifier();
      await reverify();
      decider.setPolicy(next, source);
      return redecide();
    });
  }

  if (roles.has('ingest')) {
    const connection = createRedis(config.redis.url, 'producer', log);
    const producer = new Queue(INDEX_QUEUE, { connection, prefix: config.redis.queuePrefix });
    queue = producer;
    if (!observedQueues.has(INDEX_QUEUE)) {
      observedQueues.set(INDEX_QUEUE, producer);
    }
    producer.on('error', (err) => log.warn({ err }, 'queue error'));
    const silent = WEBHOOK_SOURCES.filter((source) => !config.webhookSecrets.some((s) => s.source === source));
    if (silent.length > 0) {
      log.warn({ sources: silent }, 'no webhook secret for these sources: their deliveries will be refused with 401');
    }
    if (config.registry.allowed.length === 0) {
      log.warn('no registry is allowed (SIGNET_ALLOWED_REGISTRIES, the registries file): every webhook event will be rejected');
    }
    registerIngestRoutes(app, {
      db,
      allowedRegistries: hostAllowlist(config.registry.allowed),
      queue: producer,
      log: log.child({ component: 'ingest' }),
      secrets: config.webhookSecrets,
      publisher: connection,
      prefix: config.redis.queuePrefix,
      maxBodyBytes: config.http.maxWebhookBytes,
    });
    steps.push({ name: 'queue', run: () => producer.close() });
    steps.push({ name: 'producer-redis', run: () => connection.quit() });
    if (!roles.has('worker')) {
      checks.push({ name: 'redis', check: () => connection.ping() });
    }
  }

  if (roles.has('api')) {
    const subscriber = createRedis(config.redis.url, 'worker', log);
    let learner: Learner | null = null;
    if (config.decisions.learnRegistries.length > 0) {
      let learnQueue = queue;
      if (learnQueue === null) {
        const connection = createRedis(config.redis.url, 'producer', log);
        const producer = new Queue(INDEX_QUEUE, { connection, prefix: config.redis.queuePrefix });
        producer.on('error', (err) => log.warn({ err }, 'queue error'));
        steps.push({ name: 'learn-queue', run: () => producer.close() });
        steps.push({ name: 'learn-redis', run: () => connection.quit() });
        learnQueue = producer;
      }
      learner = { queue: learnQueue, registries: new Set(config.decisions.learnRegistries), waitMs: config.decisions.waitMs };
    }
    const table = new DecisionTable(db, policy, log.child({ component: 'decision-table' }), learner, { allowUnknown: config.decisions.allowUnknown });
    if (config.decisions.allowUnknown) {
      log.warn('SIGNET_UNKNOWN_IMAGES=allow: images Signet has never indexed are admitted');
    }
    await table.start(subscriber, config.redis.queuePrefix);
    if (apiOnly) {
      // Without the ledger-events channel answers go on from memory, marked stale.
      checks.push({
        name: 'redis',
        degradable: true,
        check: () => (subscriber.status === 'ready' ? Promise.resolve() : Promise.reject(new Error(`subscriber ${subscriber.status}`))),
      });
    }
    onPolicy.push((next) => table.setPolicy(next));
    registerApiRoutes(app, table);
    registerUi(app);
    // The queue dashboard reads the queues through its own connection (API-only replicas have none).
    const boardConnection = createRedis(config.redis.url, 'producer', log);
    const boardQueues = [INDEX_QUEUE, ALERTS_QUEUE].map((name) => new Queue(name, { connection: boardConnection, prefix: config.redis.queuePrefix }));
    for (const q of boardQueues) {
      q.on('error', (err) => log.warn({ err }, 'queue dashboard: queue error'));
      steps.push({ name: `board-${q.name}`, run: () => q.close() });
    }
    steps.push({ name: 'board-redis', run: () => boardConnection.quit() });
    await registerQueueDashboard(app, boardQueues, config.api.tokens);
    metrics.gauge('signet_decision_table_entries', 'Images in this replica\'s in-memory decision table.', [], (g) => g.set(table.size));
    metrics.gauge('signet_decision_table_oldest_entry_age_seconds', 'Age of the oldest verification behind an entry of the decision table.', [], (g) => {
      const oldest = table.oldestVerifiedAt();
      g.set(oldest === null ? 0 : Math.max(0, Date.now() - oldest) / 1000);
    });
    if (config.api.tokens.length === 0) {
      log.warn('SIGNET_API_TOKENS is not set: /graphql and the queue dashboard (/admin/queues) answer anyone who can reach this port');
    }
    registerGraphql(app, {
      db,
      log: log.child({ component: 'graphql' }),
      tokens: config.api.tokens,
      policyVersion: () => table.policyVersion,
      ledgerEvents: (listener) => table.onEvent(listener),
    });
    steps.push({ name: 'subscriber-redis', run: () => subscriber.quit() });
  }

  steps.push({ name: 'postgres', run: () => db.destroy() });
  const url = await app.listen({ host: config.http.host, port: config.http.port });
  log.info({ roles: [...roles], url }, 'signet started');
  async function reloadPolicy(): Promise<string> {
    try {
      const next = await loadPolicy(config.policyPath);
      if (next.policy.version !== current.version) {
        log.info({ from: current.version, to: next.policy.version }, 'policy changed');
        current = next.policy;
        await Promise.all(onPolicy.map((apply) => apply(next.policy, next.source)));
      }
    } catch (err) {
      log.error({ err }, 'policy reload failed; keeping the policy in force');
    }
    return current.version;
  }
  if (config.policyPath !== null) {
    // Polling survives the atomic symlink swaps Kubernetes uses for mounted ConfigMaps.
    const path = config.policyPath;
    watchFile(path, { interval: 1_000 }, () => void reloadPolicy());
    steps.unshift({ name: 'policy-watch', run: () => Promise.resolve(unwatchFile(path)) });
  }

  if (observedQueues.size > 0) {
    metrics.gauge('signet_queue_jobs', 'Jobs in each queue by state (read from Redis on scrape).', ['queue', 'state'], async (g) => {
      for (const [name, q] of observedQueues) {
        const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children');
        for (const [state, n] of Object.entries(counts)) {
          g.set({ queue: name, state }, n);
        }
      }
    });
  }

  return {
    app,
    db,
    queue,
    worker,
    verificationCache: () => cacheStats(),
    url,
    get policy() {
      return current;
    },
    redecided,
    reloadPolicy,
    shutdownSteps: steps,
  };
}

