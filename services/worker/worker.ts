import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { RegistryError } from '../common/errors.ts';
import { IndexManifestJob, LearnImageJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import { indexManifest, learnImage, type IndexDeps, type IndexResult } from './jobs/index-manifest.job.ts';

export interface WorkerOptions {
  readonly connection: Redis;
  readonly prefix: string;
  readonly concurrency: number;
  readonly log: Logger;
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
        const parsed = LearnImageJob.schema.safeParse(job.data);
        if (!parsed.success) {
          throw new UnrecoverableError(`invalid job payload: ${parsed.error.message}`);
        }
        const data = parsed.data;
        bindings = { registry: data.registry, repository: data.repository, 'image.reference': data.reference };
        trigger = 'learn';
        run = (log) => learnImage(deps, data, log);
      } else if (job.name === IndexManifestJob.name) {
        const parsed = IndexManifestJob.schema.safeParse(job.data);
        if (!parsed.success) {
          throw new UnrecoverableError(`invalid job payload: ${parsed.error.message}`);
        }
        const data = parsed.data;
        bindings = { registry: data.registry, repository: data.repository, 'image.digest': data.digest };
        trigger = data.trigger.kind;
        run = (log) => indexManifest(deps, data, log);
      } else {
        throw new UnrecoverableError(`unknown job ${job.name}`);
      }
      const log = base.child(bindings);
      try {
        const result = await run(log);
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
      lockDuration: 60_000,
      maxStalledCount: 3,
    },
  );
  worker.on('error', (err) => opts.log.error({ err }, 'worker error'));
  return worker;
}
