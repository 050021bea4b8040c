import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Signet's Prometheus metrics, one registry per process (served at `/metrics`). Series that are
 * cheap to read on scrape (queue depth, decision-table size, verification cache) are gauges read
 * by collectors that the roles add; the rest are counted where things happen.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly webhookDeliveries: Counter<'source' | 'status'>;
  readonly jobDuration: Histogram<'job' | 'result'>;
  readonly jobWait: Histogram<'job'>;
  readonly verifications: Counter<'format' | 'kind' | 'outcome'>;
  readonly registryRequests: Counter<'registry' | 'status'>;
  readonly ledgerLag: Histogram;
  readonly decisionRequests: Counter<'endpoint' | 'status'>;
  readonly decisionDuration: Histogram<'endpoint'>;
  /** Admission requests answered (AdmissionReview validation), by result and deciding reason (a closed set). */
  readonly admissionRequests: Counter<'result' | 'reason'>;
  /** Admission records written to Postgres. */
  readonly admissionRecordsWritten: Counter;
  /** Admission records Signet had to drop, by cause (`buffer_full`, `shutdown`). */
  readonly admissionRecordsDropped: Counter<'cause'>;
  /** Policy reloads that failed (the policy in force stayed). */
  readonly policyReloadFailures: Counter;
  /** Adds a gauge whose value(s) are read on each scrape. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: (g: Gauge<L>) => void | Promise<void>): void;
  /**
   * Adds a counter (`name` ends in `_total`) whose running totals are kept elsewhere and read on
   * each scrape, e.g. a cache's hits since start: `read` returns each label value's total.
   */
  counterOf<L extends string>(name: string, help: string, label: L, read: () => Readonly<Record<string, number>>): void;
}

/** What `signet_build_info` reports: the package version, the source revision (SIGNET_REVISION, set at image build) and Node's version. */
export interface BuildInfo {
  readonly version: string;
  readonly revision: string;
}

const SECONDS_FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const SECONDS_SLOW = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * @param build what `signet_build_info` reports. Node's default process metrics keep their stock
 * names (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`...), so stock Node dashboards work.
 */
export function createMetrics(build: BuildInfo = { version: 'unknown', revision: 'unknown' }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new Gauge({
    name: 'signet_build_info',
    help: 'Always 1; the labels say which Signet runs: package version, source revision and Node version.',
    labelNames: ['version', 'revision', 'node'],
    registers,
  }).set({ version: build.version, revision: build.revision, node: process.version }, 1);
  return {
    registry,
    webhookDeliveries: new Counter({
      name: 'signet_webhook_deliveries_total',
      help: 'Webhook deliveries by source and HTTP status answered (202 accepted; 4xx refused; 503 queue down).',
      labelNames: ['source', 'status'],
      registers,
    }),
    jobDuration: new Histogram({
      name: 'signet_job_duration_seconds',
      help: 'Worker job processing time by job name and result (indexed, not_found, resolved, skipped, malformed, failed).',
      labelNames: ['job', 'result'],
      buckets: SECONDS_SLOW,
      registers,
    }),
    jobWait: new Histogram({
      name: 'signet_job_wait_seconds',
      help: 'Time a job waited in the queue before a worker took it.',
      labelNames: ['job'],
      buckets: SECONDS_SLOW,
      registers,
    }),
    verifications: new Counter({
      name: 'signet_verifications_total',
      help: 'Signatures and attestations verified (cache hits included), by format, kind and outcome.',
      labelNames: ['format', 'kind', 'outcome'],
      registers,
    }),
    registryRequests: new Counter({
      name: 'signet_registry_requests_total',
      help: 'HTTP requests to registries (token realms and blob storage included) by host and status; "error" when no answer came.',
      labelNames: ['registry', 'status'],
      registers,
    }),
    ledgerLag: new Histogram({
      name: 'signet_ledger_lag_seconds',
      help: 'From the push the registry reported to the decision being published (index jobs).',
      buckets: SECONDS_SLOW,
      registers,
    }),
    decisionRequests: new Counter({
      name: 'signet_decision_requests_total',
      help: 'Decision requests by endpoint and HTTP status.',
      labelNames: ['endpoint', 'status'],
      registers,
    }),
    decisionDuration: new Histogram({
      name: 'signet_decision_request_duration_seconds',
      help: 'Decision request latency in the server, by endpoint.',
      labelNames: ['endpoint'],
      buckets: SECONDS_FAST,
      registers,
    }),
    counterOf(name, help, label, read) {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [value, total] of Object.entries(read())) {
            this.inc({ [label]: value } as Partial<Record<typeof label, string>>, total);
          }
        },
      });
    },
    admissionRequests: new Counter({
      name: 'signet_admission_requests_total',
      help: 'AdmissionReview validation requests answered, by result (allowed, warned, denied, exempted) and the reason that decided it (a closed set; anything else is "other").',
      labelNames: ['result', 'reason'],
      registers,
    }),
    admissionRecordsWritten: new Counter({
      name: 'signet_admission_records_written_total',
      help: 'Admission records written to Postgres.',
      registers,
    }),
    admissionRecordsDropped: new Counter({
      name: 'signet_admission_records_dropped_total',
      help: 'Admission records dropped unwritten, by cause: buffer_full (Postgres too slow or down while SIGNET_ADMISSION_RECORD_BUFFER records waited), shutdown (still unwritten when the process stopped).',
      labelNames: ['cause'],
      registers,
    }),
    policyReloadFailures: new Counter({
      name: 'signet_policy_reload_failures_total',
      help: 'Policy reloads (file change or SIGHUP) that failed; the policy in force stayed.',
      registers,
    }),
    gauge(name, help, labelNames, read) {
      new Gauge({
        name,
        help,
        labelNames: [...labelNames],
        registers,
        async collect() {
          await read(this);
        },
      });
    },
  };
}
