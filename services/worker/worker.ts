import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { JobDefinition } from '../common/jobs/define-job.ts';
import { RegistryError } from '../common/errors.ts';
import { IndexManifestJob, LearnImageJob, ResolveTagJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import type { Metrics } from '../common/metrics.ts';
import { indexManifest, learnImage, resolveTag, type IndexDeps, type IndexResult } from './jobs/index-manifest.job.ts';

export interface WorkerOptions {
  readonly connection: Redis;
  readonly prefix: string;
  readonly concurrency: number;
  /** Lock duration: a job whose worker died is picked up again this long after its last renewal. */
  readonly lockMs: number;
  readonly log: Logger;
  readonly metrics?: Metrics;
}

/** The payload parsed with the job's schema; an unparsable one fails for good (payloads outlive deploys). */
function parsePayload<S extends z.ZodType>(def: JobDefinition<S>, data: unknown): z.infer<S> {
  const parsed = def.schema.safeParse(data);
  if (!parsed.success) {
    throw new UnrecoverableError(`invalid job payload: ${parsed.error.message}`);
  }
  return parsed.data;
}

/**
 * Consumes the index queue. The payload is parsed before the handler runs (payloads outlive
 * deploys); an unparsable one, or a registry answer that will never change (hostile manifest,
 * 4xx), fails the job for good. Transient registry trouble and database errors throw, so BullMQ
 * retries with backoff. Verification failures are results, not job failures.
 */
export function startIndexWorker(deps: IndexDeps, opts: WorkerOptions): Worker {
  const worker = new Worker(
    IndexManifestJob.queue,
    async (job: Job): Promise<IndexResult> => {
      const started = performance.now();
      const base = opts.log.child({ 'job.id': job.id, 'job.name': job.name, 'job.attemptsMade': job.attemptsMade });
      let run: (log: Logger) => Promise<IndexResult>;
      let bindings: Record<string, string>;
      let trigger: string;
      if (job.name === LearnImageJob.name) {
        const data = parsePayload(LearnImageJob, job.data);
        bindings = { registry: data.registry, repository: data.repository, 'image.reference': data.reference };
        trigger = 'learn';
        run = (log) => learnImage(deps, data, log);
      } else if (job.name === ResolveTagJob.name) {
        const data = parsePayload(ResolveTagJob, job.data);
        bindings = { registry: data.registry, repository: data.repository, 'image.tag': data.tag, source: data.source };
        trigger = 'tag';
        run = () => resolveTag(deps, data);
      } else if (job.name === IndexManifestJob.name) {
        const data = parsePayload(IndexManifestJob, job.data);
        bindings = { registry: data.registry, repository: data.repository, 'image.digest': data.digest };
        trigger = data.trigger.kind;
        run = (log) => indexManifest(deps, data, log);
      } else {
        throw new UnrecoverableError(`unknown job ${job.name}`);
      }
      const log = base.child(bindings);
      const observe = (result: string) => {
        opts.metrics?.jobDuration.observe({ job: job.name, result }, (performance.now() - started) / 1000);
      };
      if (job.processedOn !== undefined) {
        opts.metrics?.jobWait.observe({ job: job.name }, Math.max(0, job.processedOn - job.timestamp) / 1000);
      }
      try {
        const result = await run(log);
        observe(result.result);
        if (result.result === 'indexed' && job.name === IndexManifestJob.name) {
          // Push reported → decision published (the decider published before indexManifest returned).
          const eventAt = Date.parse((job.data as { eventAt: string }).eventAt);
          if (Number.isFinite(eventAt)) {
            opts.metrics?.ledgerLag.observe(Math.max(0, Date.now() - eventAt) / 1000);
          }
        }
        log.info(
          {
            result: result.result,
            manifests: result.result === 'indexed' ? result.manifests : undefined,
            ms: Math.round(performance.now() - started),
            trigger,
          },
          'job done',
        );
        return result;
      } catch (err) {
        observe('failed');
        const permanent = err instanceof RegistryError && !err.transient && err.code !== 'UNAUTHORIZED';
        log.warn({ err, permanent, ms: Math.round(performance.now() - started) }, 'job failed');
        if (permanent) {
          throw new UnrecoverableError(`${err.code}: ${err.message}`);
        }
        throw err;
      }
    },
    {
      connection: opts.connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      // A job whose worker died is picked up again after this long without a lock renewal.
      lockDuration: opts.lockMs,
      stalledInterval: Math.min(30_000, Math.ceil(opts.lockMs / 2)),
      maxStalledCount: 3,
    },
  );
  worker.on('error', (err) => opts.log.error({ err }, 'worker error'));
  return worker;
}
