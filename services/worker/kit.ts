import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../common/redis.ts';
import type { z } from 'zod';
import { RegistryError } from '../common/errors.ts';
import type { JobDefinition } from '../common/jobs/define-job.ts';
import type { Logger } from '../common/logger.ts';
import type { Metrics } from '../common/metrics.ts';
import { isUnreachable, type OutageLog } from '../common/outage.ts';

/** What a handler gets: the parsed payload, a logger bound to the job, and a signal aborted at shutdown. */
export interface JobContext<D> {
  readonly data: D;
  readonly job: Job;
  readonly log: Logger;
  /** Aborted when the worker closes: long handlers (a crawl) stop between steps. */
  readonly signal: AbortSignal;
}

export interface JobSpec<D, R> {
  /** Fields every log line of the job carries (registry, repository, digest…). */
  bindings?(data: D): Record<string, string>;
  handle(ctx: JobContext<D>): Promise<R>;
  /** The `result` label of `signet_job_duration_seconds` and the `job done` line; default `done`. */
  result?(outcome: R): string;
  /** Extra fields of the `job done` line. */
  summary?(outcome: R, data: D): Record<string, unknown>;
  /** Runs after a successful handler (a metric only success can observe). */
  after?(outcome: R, data: D): void;
}

/** A job's implementation, as the worker of its queue runs it. */
export interface JobImplementation {
  readonly definition: JobDefinition<z.ZodType>;
  run(job: Job, base: Logger, signal: AbortSignal, metrics: Metrics | undefined, postgresOutage?: OutageLog): Promise<unknown>;
}

/**
 * The payload parsed with the job's schema before the handler runs; an unparsable one fails for
 * good, since retrying cannot fix it (payloads outlive deploys).
 */
function parsePayload<S extends z.ZodType>(def: JobDefinition<S>, data: unknown): z.infer<S> {
  const parsed = def.schema.safeParse(data);
  if (!parsed.success) {
    throw new UnrecoverableError(`invalid job payload: ${parsed.error.message}`);
  }
  return parsed.data;
}

/**
 * A registry answer that will never change (a hostile manifest, a 4xx) fails the job for good;
 * transient registry trouble and database errors throw as they are, so BullMQ retries with backoff.
 * 401/403 are retried: credentials are rotated while jobs wait.
 */
function classify(err: unknown): unknown {
  if (err instanceof RegistryError && !err.transient && err.code !== 'UNAUTHORIZED') {
    return new UnrecoverableError(`${err.code}: ${err.message}`);
  }
  return err;
}

/**
 * Binds a job definition to its handler (Hive's `implementTask`): parses the payload, binds a
 * child logger with the job's fields, records `signet_job_wait_seconds` and
 * `signet_job_duration_seconds`, logs the outcome, and classifies registry errors.
 */
export function implementJob<S extends z.ZodType, R>(definition: JobDefinition<S>, spec: JobSpec<z.infer<S>, R>): JobImplementation {
  return {
    definition,
    async run(job, base, signal, metrics, postgresOutage) {
      const started = performance.now();
      const ms = () => Math.round(performance.now() - started);
      if (job.processedOn !== undefined) {
        metrics?.jobWait.observe({ job: job.name }, Math.max(0, job.processedOn - job.timestamp) / 1000);
      }
      const observe = (result: string) => metrics?.jobDuration.observe({ job: job.name, result }, (performance.now() - started) / 1000);
      let log = base.child({ 'job.id': job.id, 'job.name': job.name, 'job.attemptsMade': job.attemptsMade });
      try {
        const data = parsePayload(definition, job.data);
        log = log.child(spec.bindings?.(data) ?? {});
        const outcome = await spec.handle({ data, job, log, signal });
        const result = spec.result?.(outcome) ?? 'done';
        observe(result);
        spec.after?.(outcome, data);
        log.info({ result, ...spec.summary?.(outcome, data), ms: ms() }, 'job done');
        return outcome;
      } catch (err) {
        observe('failed');
        const classified = classify(err);
        if (postgresOutage !== undefined && !(err instanceof RegistryError) && isUnreachable(err)) {
          // The ledger is down: one line per interval for every job that fails on it (they retry).
          postgresOutage.error(err as Error, `job ${job.name}`);
        } else {
          log.warn({ err, permanent: classified instanceof UnrecoverableError, ms: ms() }, 'job failed');
        }
        throw classified;
      }
    },
  };
}

export interface JobWorkerOptions {
  readonly connection: RedisClient;
  readonly prefix: string;
  readonly concurrency: number;
  /** Lock duration: a job whose worker died is picked up again this long after its last renewal. */
  readonly lockMs: number;
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** Every job defined on this queue must have an implementation (see `common/jobs/catalog.ts`). */
  readonly defined: readonly JobDefinition<z.ZodType>[];
  /** Where the worker's own errors (Redis unreachable, mostly) go; logged in full by default. */
  readonly onError?: (err: Error) => void;
  /** Where jobs that fail because Postgres is unreachable are reported, instead of a stack each. */
  readonly postgresOutage?: OutageLog;
}

export interface JobWorker {
  readonly worker: Worker;
  /** Aborts running handlers' signals and waits for active jobs (BullMQ `close`). */
  close(): Promise<void>;
}

/**
 * The implementations of one queue's jobs must cover exactly the jobs defined on it. Refusing at
 * start beats a job that waits in Redis for a handler no replica has.
 */
export function checkImplementations(queue: string, implementations: readonly JobImplementation[], defined: readonly JobDefinition<z.ZodType>[]): void {
  const names = new Set(implementations.map((i) => i.definition.name));
  const missing = defined.filter((d) => d.queue === queue && !names.has(d.name)).map((d) => d.name);
  if (missing.length > 0) {
    throw new Error(`queue ${queue}: no handler for ${missing.join(', ')}`);
  }
  const foreign = implementations.filter((i) => i.definition.queue !== queue).map((i) => i.definition.name);
  if (foreign.length > 0) {
    throw new Error(`queue ${queue}: ${foreign.join(', ')} belong to another queue`);
  }
  if (names.size !== implementations.length) {
    throw new Error(`queue ${queue}: a job has two handlers`);
  }
}

/** Consumes `queue` with `implementations`, dispatching by job name. */
export function startJobWorker(queue: string, implementations: readonly JobImplementation[], opts: JobWorkerOptions): JobWorker {
  checkImplementations(queue, implementations, opts.defined);
  const byName = new Map(implementations.map((i) => [i.definition.name, i]));
  const stop = new AbortController();
  const worker = new Worker(
    queue,
    async (job: Job) => {
      const implementation = byName.get(job.name);
      if (implementation === undefined) {
        throw new UnrecoverableError(`unknown job ${job.name}`);
      }
      return implementation.run(job, opts.log, stop.signal, opts.metrics, opts.postgresOutage);
    },
    {
      connection: opts.connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      lockDuration: opts.lockMs,
      stalledInterval: Math.min(30_000, Math.ceil(opts.lockMs / 2)),
      maxStalledCount: 3,
    },
  );
  worker.on('error', opts.onError ?? ((err) => opts.log.error({ err }, 'worker error')));
  return {
    worker,
    async close() {
      stop.abort();
      await worker.close();
    },
  };
}
