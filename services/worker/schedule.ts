import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { RECONCILE_QUEUE, RECONCILE_SCHEDULER_ID, ReconcileJob } from '../../common/jobs/reconcile.ts';
import type { Logger } from '../../common/logger.ts';
import { crawlRegistry, type CrawlDeps, type CrawlResult } from '../../core/crawl.ts';

export interface ReconcilerOptions {
  /** A worker-role connection: commands wait for Redis rather than fail, so start never depends on it. */
  readonly connection: Redis;
  readonly prefix: string;
  /** 0 removes the schedule. */
  readonly intervalMs: number;
  /** Registries crawled by every pass. */
  readonly registries: readonly string[];
  readonly log: Logger;
}

export interface Reconciler {
  close(): Promise<void>;
}

/**
 * Schedules the reconciliation crawl every `intervalMs` (a BullMQ job scheduler: upserting it from
 * every replica keeps one schedule) and runs passes one at a time. A registry that fails is logged
 * and retried on the next pass; the others are still crawled. Interval 0 or no registries removes
 * the schedule, so turning reconciliation off takes effect on the next start.
 */
export function startReconciler(deps: CrawlDeps, opts: ReconcilerOptions): Reconciler {
  const queue = new Queue(RECONCILE_QUEUE, { connection: opts.connection, prefix: opts.prefix });
  queue.on('error', (err) => opts.log.warn({ err }, 'reconcile queue error'));
  const off = opts.intervalMs === 0 || opts.registries.length === 0;
  // In the background: the schedule is settled once Redis answers.
  void (
    off
      ? queue.removeJobScheduler(RECONCILE_SCHEDULER_ID)
      : queue.upsertJobScheduler(
          RECONCILE_SCHEDULER_ID,
          { every: opts.intervalMs },
          { name: ReconcileJob.name, data: ReconcileJob.schema.parse({}), opts: ReconcileJob.options },
        )
  ).then(
    () => opts.log.info({ intervalMs: opts.intervalMs, registries: opts.registries }, off ? 'scheduled reconciliation is off' : 'scheduled reconciliation'),
    (err: unknown) => opts.log.error({ err }, 'cannot set the reconciliation schedule'),
  );
  if (off) {
    return { close: () => queue.close() };
  }
  // Closing stops a running crawl between repositories; its cursor lets the next pass resume.
  const stop = new AbortController();
  const worker = new Worker(
    RECONCILE_QUEUE,
    async (job: Job) => {
      const data = ReconcileJob.schema.parse(job.data);
      const registries = data.registries.length > 0 ? data.registries : opts.registries;
      const results: Record<string, Pick<CrawlResult, 'repositories' | 'tags' | 'queued' | 'tagsRecorded'> | { error: string }> = {};
      for (const registry of registries) {
        const started = performance.now();
        try {
          if (stop.signal.aborted) {
            break;
          }
          const r = await crawlRegistry(deps, registry, null, { signal: stop.signal });
          results[registry] = { repositories: r.repositories, tags: r.tags, queued: r.queued, tagsRecorded: r.tagsRecorded };
          opts.log.info({ registry, ...results[registry], ms: Math.round(performance.now() - started) }, 'reconciled');
        } catch (err) {
          results[registry] = { error: (err as Error).message };
          opts.log.warn({ err, registry }, 'reconciliation crawl failed; the next pass retries');
        }
      }
      return results;
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: 1, lockDuration: 120_000 },
  );
  worker.on('error', (err) => opts.log.error({ err }, 'reconcile worker error'));
  return {
    async close() {
      stop.abort();
      await worker.close();
      await queue.close();
    },
  };
}
