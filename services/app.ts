import type { Queue, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Config } from './common/config.ts';
import type { Db } from './common/db/client.ts';
import type { Logger } from './common/logger.ts';
import { startPlatform } from './common/platform.ts';
import { loadPolicy } from './common/policy/load.ts';
import type { Policy } from './common/policy/policy.ts';
import { PolicyWatcher } from './common/policy/watch.ts';
import type { ShutdownStep } from './common/shutdown.ts';
import type { VerificationCacheStats } from './core/verification/cache.ts';

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
  /** Re-reads SIGNET_POLICY (see {@link PolicyWatcher.reload}); resolves to the version in force. */
  reloadPolicy(): Promise<string>;
  /** Base URL once listening, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Ordered shutdown: HTTP intake, consumers (drain active jobs), queues, Redis, Postgres. */
  readonly shutdownSteps: readonly ShutdownStep[];
}

/**
 * Starts the roles in `config.roles` on one platform (database, HTTP server, metrics): the worker
 * first (it decides the ledger the API serves), then ingest, then the API; watches the policy file
 * and listens. Used by main.ts and, with a test configuration, by the integration tests.
 */
export async function startSignet(config: Config, log: Logger): Promise<Signet> {
  const roles = new Set(config.roles);
  const platform = await startPlatform(config, log);
  const loaded = await loadPolicy(config.policyPath);
  log.info({ policy: config.policyPath, policyVersion: loaded.policy.version }, 'policy loaded');
  for (const warning of loaded.warnings ?? []) {
    log.warn({ policy: config.policyPath }, warning);
  }
  const policy = new PolicyWatcher(config.policyPath, loaded.policy, log, () => platform.metrics.policyReloadFailures.inc());
  platform.metrics.gauge('signet_policy_info', 'The policy in force: 1, labelled with its version (the sha256 every decision carries).', ['version'], (g) => {
    g.reset();
    g.set({ version: policy.current.version }, 1);
  });
  // Each role's modules load only in processes that run it: the API's (GraphQL, GraphiQL, the
  // queue dashboard) alone add about 160 MiB to an ingest or worker replica that never serves them.
  const worker = roles.has('worker') ? await (await import('./worker/start.ts')).startWorkerRole(platform, loaded) : null;
  const ingest = roles.has('ingest') ? (await import('./ingest/start.ts')).startIngestRole(platform, { readiness: worker === null }) : null;
  const apiOnly = roles.has('api') && ingest === null && worker === null;
  const api = roles.has('api') ? await (await import('./api/start.ts')).startApiRole(platform, loaded.policy, { indexQueue: ingest?.queue ?? null, apiOnly }) : null;
  if (worker !== null) {
    policy.onChange((next) => worker.setPolicy(next));
  }
  if (api !== null) {
    policy.onChange((next) => api.setPolicy(next.policy));
  }
  const unwatch = policy.watch();
  platform.onShutdown('intake', 'policy-watch', () => Promise.resolve(unwatch()));
  const url = await platform.listen();
  log.info({ roles: [...roles], url }, 'signet started');
  return {
    app: platform.app,
    db: platform.db,
    queue: ingest?.queue ?? null,
    worker: worker?.worker ?? null,
    verificationCache: () => worker?.verificationCache() ?? null,
    url,
    get policy() {
      return policy.current;
    },
    redecided: worker?.redecided ?? Promise.resolve(0),
    reloadPolicy: () => policy.reload(),
    shutdownSteps: platform.shutdownSteps(),
  };
}
