import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import * as admissions from '../common/db/queries/admissions.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { type AdmissionOutcome, decidingReason } from '../common/domain/admission.ts';
import { OUTCOMES } from '../common/domain/outcome.ts';
import type { Logger } from '../common/logger.ts';
import type { Metrics } from '../common/metrics.ts';
import { OutageLog } from '../common/outage.ts';

export type { AdmissionOutcome, AdmissionResult, AdmittedImage, DecisionMode } from '../common/domain/admission.ts';

/** Where the admission handler hands each answered request. */
export interface AdmissionRecorder {
  /** Never blocks, never throws. */
  record(outcome: AdmissionOutcome): void;
}

/**
 * Rows per insert: one statement, one short transaction. Building a batch's statement holds the
 * event loop (~8 µs a record), so batches stay small: a burst's backlog is written as many short
 * statements, with answers served between them, not as a few long pauses.
 */
export const RECORD_BATCH = 100;
/** How often waiting records are written (sooner when a batch is full). */
export const RECORD_FLUSH_MS = 250;
/** How long a stopping process keeps trying to write what waits before counting it dropped. */
export const RECORD_STOP_MS = 5_000;

/**
 * The reasons `signet_admission_requests_total` knows; any other is counted as `other`, so a
 * label's values stay a closed set whatever requests come.
 */
const METRIC_REASONS: ReadonlySet<string> = new Set([
  ...OUTCOMES,
  'allowed_without_verification',
  'unsigned',
  'threshold_not_met',
  'not_covered_by_policy',
  'unknown',
  'invalid_reference',
  'exempted',
  'break_glass',
  'no_images',
]);

/** The reason label of a request: its deciding reason when Signet knows it, else `other`. */
export function reasonLabel(outcome: Pick<AdmissionOutcome, 'result' | 'images'>): string {
  const reason = decidingReason(outcome);
  return METRIC_REASONS.has(reason) ? reason : 'other';
}

/** Counts every answered request on `/metrics`, then hands it to `next` (the record) when there is one. */
export function countingRecorder(metrics: Metrics, next: AdmissionRecorder | null): AdmissionRecorder {
  return {
    record(outcome) {
      metrics.admissionRequests.inc({ result: outcome.result, reason: reasonLabel(outcome) });
      next?.record(outcome);
    },
  };
}

export interface BatchedRecorderDeps {
  readonly db: Kysely<DB>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Records that may wait in memory (SIGNET_ADMISSION_RECORD_BUFFER); more are dropped and counted. */
  readonly bufferSize: number;
  /** Where Postgres is, for the outage log. */
  readonly address: string;
  readonly batchSize?: number;
  readonly flushMs?: number;
}

/**
 * The admission record's writer: `record` only appends to a bounded in-memory buffer; a timer
 * (or a full batch) writes the buffer to Postgres in batches, one insert each. While Postgres is
 * down the buffer keeps what it can and the next flush retries it; what the bound forces out is
 * counted in `signet_admission_records_dropped_total{cause="buffer_full"}`, and what is still
 * unwritten when the process stops in `{cause="shutdown"}`. Memory is bounded by `bufferSize`.
 */
export class BatchedAdmissionRecorder implements AdmissionRecorder {
  readonly #deps: BatchedRecorderDeps;
  readonly #batch: number;
  readonly #outage: OutageLog;
  #pending: AdmissionOutcome[] = [];
  #flushing: Promise<void> | null = null;
  #failing = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(deps: BatchedRecorderDeps) {
    this.#deps = deps;
    this.#batch = deps.batchSize ?? RECORD_BATCH;
    this.#outage = new OutageLog(deps.log, 'postgres', deps.address);
  }

  /** Records waiting to be written. */
  get pending(): number {
    return this.#pending.length;
  }

  record(outcome: AdmissionOutcome): void {
    if (this.#pending.length >= this.#deps.bufferSize) {
      this.#deps.metrics.admissionRecordsDropped.inc({ cause: 'buffer_full' });
      return;
    }
    this.#pending.push(outcome);
    if (this.#pending.length >= this.#batch && this.#flushing === null && !this.#failing && this.#timer !== null) {
      void this.flush();
    }
  }

  /** Starts the periodic flush. */
  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#deps.flushMs ?? RECORD_FLUSH_MS).unref();
  }

  /** Writes what waits, batch after batch, until the buffer is empty or a write fails (kept for the next flush). */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const pending = this.#pending;
      const batch = pending.slice(0, this.#batch);
      try {
        await admissions.insertMany(this.#deps.db, batch);
      } catch (err) {
        this.#failing = true;
        this.#outage.error(err as Error, 'admission record');
        return;
      }
      this.#failing = false;
      this.#outage.restored();
      // A stop that gave up meanwhile replaced the buffer (and counted these as dropped).
      pending.splice(0, batch.length);
      this.#deps.metrics.admissionRecordsWritten.inc(batch.length);
    }
  }

  /**
   * Stops the timer and writes what waits, trying for at most `withinMs`; what is still unwritten
   * then is counted as dropped (`shutdown`) and logged. Resolves to how many were dropped.
   */
  async stop(withinMs = RECORD_STOP_MS): Promise<number> {
    if (this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    const deadline = Date.now() + withinMs;
    while (this.#pending.length > 0 && Date.now() < deadline) {
      await Promise.race([this.flush(), sleep(Math.max(0, deadline - Date.now()))]);
      if (this.#pending.length > 0 && Date.now() < deadline) {
        await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
      }
    }
    const dropped = this.#pending.length;
    if (dropped > 0) {
      this.#pending = [];
      this.#deps.metrics.admissionRecordsDropped.inc({ cause: 'shutdown' }, dropped);
      this.#deps.log.error({ dropped }, 'admission records could not be written before stopping; dropped (counted in signet_admission_records_dropped_total)');
    }
    return dropped;
  }
}
