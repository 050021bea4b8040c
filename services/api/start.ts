import type { Queue } from 'bullmq';
import { normalizeRegistry } from '../common/domain/image-ref.ts';
import { INDEX_QUEUE } from '../common/jobs/index-manifest.ts';
import { ALERTS_QUEUE } from '../common/jobs/notify-ownership-change.ts';
import { MAINTENANCE_QUEUE } from '../common/jobs/prune-deliveries.ts';
import { EXPIRY_QUEUE } from '../common/jobs/redecide-expired.ts';
import { RECONCILE_QUEUE } from '../common/jobs/reconcile.ts';
import { ledgerStream } from '../common/events.ts';
import type { Platform } from '../common/platform.ts';
import type { Policy } from '../common/policy/policy.ts';
import { BreakGlassAlerts } from './break-glass.ts';
import { addressOf } from '../common/outage.ts';
import { type AdmissionRecorder, BatchedAdmissionRecorder, countingRecorder } from './admission-record.ts';
import { DecisionTable, type Learner } from './decision-table.ts';
import { registerGraphql } from './graphql/yoga.ts';
import { registerQueueDashboard } from './queue-dashboard.ts';
import { registerApiRoutes } from './server.ts';
import { signerDisclosure } from './disclosure.ts';
import { registerUi } from './ui.ts';

export interface ApiRole {
  setPolicy(policy: Policy): Promise<unknown>;
}

/**
 * Images asked about that Signet never indexed are learnt (queued for indexing) in the registries
 * SIGNET_LEARN_REGISTRIES names, through the ingest role's queue or one of the API's own.
 */
function learner(platform: Platform, indexQueue: Queue | null): Learner | null {
  const { decisions } = platform.config;
  if (decisions.learnRegistries.length === 0) {
    return null;
  }
  const queue = indexQueue ?? platform.queue(INDEX_QUEUE, platform.redis('producer', 'learn'), { label: 'learn' });
  return { queue, registries: new Set(decisions.learnRegistries), waitMs: decisions.waitMs };
}

/** The decision table's size and staleness, and its feed's reloads and resumptions, on `/metrics`. */
function observeTable(platform: Platform, table: DecisionTable): void {
  platform.metrics.gauge(
    'signet_decision_feed_events',
    'Decision feed since start: full reloads (fell behind the stream window), resumptions from the last event after a disconnection, events applied.',
    ['kind'],
    (g) => {
      const s = table.feedStats();
      g.set({ kind: 'reload' }, s.reloads);
      g.set({ kind: 'resume' }, s.resumes);
      g.set({ kind: 'applied' }, s.applied);
    },
  );
  platform.metrics.gauge(
    'signet_decision_miss_reads',
    'Decision-table misses read from Postgres since start, by database: the read replica (DATABASE_READ_URL), or the primary (no replica, or the replica had not replayed what this process was told).',
    ['database'],
    (g) => {
      const r = table.missReads();
      g.set({ database: 'replica' }, r.replica);
      g.set({ database: 'primary' }, r.primary);
    },
  );
  platform.metrics.gauge(
    'signet_decision_table_policy_info',
    'The policy versions of this replica\'s decision table: serving (answers are given under it), pending (a new policy, or the one in force to load again, waiting for the worker to decide the whole ledger under it).',
    ['version', 'state'],
    (g) => {
      g.reset();
      g.set({ version: table.policyVersion, state: 'serving' }, 1);
      const pending = table.pendingPolicy;
      if (pending !== null) {
        g.set({ version: pending.version, state: 'pending' }, 1);
      }
    },
  );
  platform.metrics.gauge('signet_decision_table_entries', "Images in this replica's in-memory decision table.", [], (g) => g.set(table.size));
  platform.metrics.gauge('signet_decision_table_tags', "Tags in this replica's in-memory decision table (a tag not held is looked up in Postgres).", [], (g) => g.set(table.tagCount));
  platform.metrics.gauge('signet_decision_table_stale', '1 while this replica may be behind the ledger (its decision feed is down), else 0.', [], (g) => g.set(table.stale ? 1 : 0));
  platform.metrics.gauge('signet_decision_table_oldest_entry_age_seconds', 'Age of the oldest verification behind an entry of the decision table.', [], (g) => {
    const oldest = table.oldestVerifiedAt();
    g.set(oldest === null ? 0 : Math.max(0, Date.now() - oldest) / 1000);
  });
}

/**
 * The admission record's writer (unless SIGNET_ADMISSION_RECORD=off) behind the request counter.
 * It stops after HTTP intake, writing what waits while Postgres is still open.
 */
function startAdmissionRecord(platform: Platform): AdmissionRecorder {
  const { config, db, metrics } = platform;
  if (config.admissions.record === null) {
    return countingRecorder(metrics, null);
  }
  const writer = new BatchedAdmissionRecorder({
    db,
    metrics,
    log: platform.log.child({ component: 'admission-record' }),
    bufferSize: config.admissions.record.bufferSize,
    address: addressOf(config.database.url, 5432),
  });
  writer.start();
  platform.onShutdown('consumers', 'admission-record', () => writer.stop());
  metrics.gauge('signet_admission_records_pending', 'Admission records waiting in memory to be written (at most SIGNET_ADMISSION_RECORD_BUFFER).', [], (g) => g.set(writer.pending));
  return countingRecorder(metrics, writer);
}

/**
 * The API role: decisions from an in-memory table kept fresh by the ledger-events stream, the
 * admission endpoints, GraphQL, the ownership page and the queue dashboard.
 */
export async function startApiRole(platform: Platform, policy: Policy, opts: { indexQueue: Queue | null; apiOnly: boolean }): Promise<ApiRole> {
  const { config, log, app, db } = platform;
  const follower = platform.redis('worker', 'decision-feed');
  const table = new DecisionTable(db, policy, log.child({ component: 'decision-table' }), learner(platform, opts.indexQueue), {
    allowUnknown: config.decisions.allowUnknown,
    mirrors: config.registries.flatMap((r) => (r.mirrorOf === null ? [] : [{ host: normalizeRegistry(r.host), source: r.mirrorOf.registry, prefix: r.mirrorOf.prefix }])),
    outage: platform.postgresOutage,
    readDb: platform.readDb,
    maxEntries: config.decisions.tableMax,
  });
  if (config.decisions.allowUnknown) {
    log.warn('SIGNET_UNKNOWN_IMAGES=allow: images Signet has never indexed are admitted');
  }
  await table.start(follower, ledgerStream(config.redis));
  platform.onShutdown('consumers', 'decision-feed', () => table.stop());
  if (opts.apiOnly) {
    // Without the ledger-events stream answers go on from memory, marked stale.
    platform.checks.push({
      name: 'redis',
      degradable: true,
      check: () => (table.feedConnected() ? Promise.resolve() : Promise.reject(new Error(`decision feed ${follower.status}`))),
    });
  }
  const alerts = config.alerts.webhookUrl === null ? null : new BreakGlassAlerts(config.alerts.webhookUrl, log.child({ component: 'break-glass' }), platform.metrics.registry);
  registerApiRoutes(app, table, signerDisclosure(config.api.tokens), { policy: () => table.policy, alerts, recorder: startAdmissionRecord(platform) });
  registerUi(app);
  // The queue dashboard reads the queues through its own connection (API-only replicas have none).
  const board = platform.redis('producer', 'board');
  await registerQueueDashboard(app, [INDEX_QUEUE, ALERTS_QUEUE, RECONCILE_QUEUE, MAINTENANCE_QUEUE, EXPIRY_QUEUE].map((name) => platform.queue(name, board, { label: `queue dashboard: ${name}` })), config.api.tokens);
  observeTable(platform, table);
  if (config.api.tokens.length === 0) {
    log.warn('SIGNET_API_TOKENS is not set: /graphql and the queue dashboard (/admin/queues) answer anyone who can reach this port');
  }
  registerGraphql(app, {
    // GraphQL reads the read replica when there is one (DATABASE_READ_URL); its lag shows there.
    db: platform.readDb,
    log: log.child({ component: 'graphql' }),
    tokens: config.api.tokens,
    policyVersion: () => table.policyVersion,
    policy: () => table.policy,
    ledgerEvents: (listener) => table.onEvent(listener),
  });
  return { setPolicy: (next) => table.setPolicy(next) };
}
