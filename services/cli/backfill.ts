import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import type { Config } from '../common/config.ts';
import { openDb } from '../common/db/client.ts';
import { migrateToLatest } from '../common/db/migrate.ts';
import { isRegistryHost, isRepositoryName } from '../common/domain/image-ref.ts';
import { announcer, ledgerStream } from '../common/events.ts';
import { addJob } from '../common/jobs/define-job.ts';
import { INDEX_QUEUE, IndexManifestJob } from '../common/jobs/index-manifest.ts';
import type { Logger } from '../common/logger.ts';
import { createRedis } from '../common/redis.ts';
import { loadConfiguredCredentials, registryClientFromConfig } from '../core/oci/from-config.ts';
import { RegistryError } from '../common/errors.ts';
import { crawlRegistry, describeLimit, type CrawlResult } from '../core/crawl.ts';
import { createProgressReporter } from './progress.ts';
import { SIGNAL_EXIT_CODES, UsageError, type Command, type CommandIo, type InterruptSignal } from './command.ts';

export const BACKFILL_USAGE = `usage: signet backfill <registry>[/<repository>] [--restart] [--wait] [--page-size N] [--concurrency N] [--json]

Crawls the registry's catalog (or one repository), tag lists and referrers, and queues an index
job for every digest the ledger lacks. An interrupted crawl of a whole registry resumes where it
stopped unless --restart is given. Workers (signet with the worker role) do the indexing.

Every listing is bounded (SIGNET_CRAWL_MAX_LIST_PAGES, SIGNET_CRAWL_MAX_LIST_ENTRIES) and so is
the whole crawl (SIGNET_CRAWL_MAX_PASS_PAGES, SIGNET_CRAWL_MAX_PASS_ENTRIES); a listing also ends
where the registry links to a page it already served. Each bound reached is reported.

Exit codes: 0 done, 1 failed jobs (--wait) or an error, 2 usage, 3 a bound was reached,
4 the registry could not be asked (not allowed, unreachable, refused the credentials),
130 stopped by SIGINT, 143 stopped by SIGTERM (the next backfill resumes where it stopped).

  --restart         start the catalog from the top, ignoring an interrupted crawl
  --wait            wait until the queued jobs are done, then report images per second
  --page-size N     page size asked of _catalog and tags/list (default 100)
  --concurrency N   tags resolved at once (default 8)
  --json            one JSON object on stdout instead of the text report
`;

/** `<registry>[/<repository>]`: the first component is always the registry host. */
export function parseTarget(target: string): { registry: string; repository: string | null } {
  const slash = target.indexOf('/');
  const registry = (slash === -1 ? target : target.slice(0, slash)).toLowerCase();
  const repository = slash === -1 ? null : target.slice(slash + 1);
  if (!isRegistryHost(registry)) {
    throw new UsageError(`${JSON.stringify(registry)} is not a registry host (host or host:port)`);
  }
  if (repository !== null && !isRepositoryName(repository)) {
    throw new UsageError(`${JSON.stringify(repository)} is not a repository name`);
  }
  return { registry, repository };
}

function positive(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new UsageError(`--${name} must be an integer from 1 to 10000`);
  }
  return n;
}

export const backfill: Command = {
  summary: 'crawl a registry (or one repository) and queue what the ledger lacks',
  usage: BACKFILL_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        restart: { type: 'boolean', default: false },
        wait: { type: 'boolean', default: false },
        'page-size': { type: 'string' },
        concurrency: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length !== 1) {
      throw new UsageError('name exactly one <registry>[/<repository>]');
    }
    const { registry, repository } = parseTarget(positionals[0]!);
    const pageSize = positive(values['page-size'], 'page-size', 100);
    const concurrency = positive(values.concurrency, 'concurrency', 8);

    const db = openDb(config.database, log);
    const redis = createRedis(config.redis, 'producer', log);
    const queue = new Queue(INDEX_QUEUE, { connection: redis, prefix: config.redis.queuePrefix });
    queue.on('error', (err) => log.warn({ err }, 'queue error'));
    const stop = new AbortController();
    /** The signal that stopped the backfill, if one did. */
    const stoppedBy = () => (stop.signal.aborted ? (stop.signal.reason as InterruptSignal) : null);
    const onSignal = (signal: InterruptSignal) => {
      if (stop.signal.aborted) {
        io.exit(SIGNAL_EXIT_CODES[signal]);
      }
      io.stderr.write(`\nbackfill: ${signal}: stopping once the requests in flight end (again to quit at once); the next backfill resumes\n`);
      stop.abort(signal);
    };
    io.onInterrupt(onSignal);
    try {
      await migrateToLatest(db);
      if (redis.status !== 'ready') {
        // A producer connection refuses commands until connected (no offline queue).
        await once(redis, 'ready');
      }
      const client = registryClientFromConfig(config, await loadConfiguredCredentials(config), log);
      const progress = createProgressReporter(io.stderr);
      const started = performance.now();
      let result: CrawlResult;
      try {
        result = await crawlRegistry(
          { db, registry: client, enqueueIndex: (data) => addJob(queue, IndexManifestJob, data), announce: announcer(redis, ledgerStream(config.redis), log), log },
          registry,
          repository,
          { pageSize, concurrency, restart: values.restart, signal: stop.signal, limits: config.crawl, onProgress: (p) => progress.update(p) },
        );
      } catch (err) {
        if (!(err instanceof RegistryError)) {
          throw err;
        }
        // As `signet verify`: the registry could not be asked (not allowed, unreachable, refused).
        progress.done();
        io.stderr.write(`signet backfill: ${err.message}\n`);
        return 4;
      }
      progress.done();
      const report: BackfillReport = { registry, repository, result, seconds: (performance.now() - started) / 1000, stoppedBy: stoppedBy(), indexed: null, failed: null };
      if (result.stopped === 'signal') {
        io.stdout.write(values.json ? jsonReport(report) : textReport(report));
        return SIGNAL_EXIT_CODES[stoppedBy() ?? 'SIGINT'];
      }
      const code = result.limitsReached > 0 ? 3 : 0;
      if (values.wait && result.jobIds.length > 0) {
        if (!values.json) {
          io.stdout.write(textReport(report));
        }
        const failed = await waitForJobs(queue, result.jobIds, io, stop.signal);
        const signal = stoppedBy();
        if (signal !== null) {
          io.stdout.write(values.json ? jsonReport({ ...report, stoppedBy: signal }) : `stopped waiting by ${signal}; the queued jobs go on in the workers\n`);
          return SIGNAL_EXIT_CODES[signal];
        }
        const total = (performance.now() - started) / 1000;
        const indexed = result.jobIds.length - failed;
        io.stdout.write(
          values.json
            ? jsonReport({ ...report, seconds: total, indexed, failed })
            : `indexed ${indexed} of ${result.jobIds.length} queued images in ${total.toFixed(1)} s (${(indexed / total).toFixed(1)} images/s)\n`,
        );
        return failed > 0 ? 1 : code;
      }
      io.stdout.write(values.json ? jsonReport(report) : textReport(report));
      return code;
    } finally {
      await queue.close().catch(() => undefined);
      await redis.quit().catch(() => undefined);
      await db.destroy();
    }
  },
};

interface BackfillReport {
  readonly registry: string;
  readonly repository: string | null;
  readonly result: CrawlResult;
  readonly seconds: number;
  readonly stoppedBy: InterruptSignal | null;
  /** With --wait: the queued images indexed and failed. */
  readonly indexed: number | null;
  readonly failed: number | null;
}

/** The text report: what was crawled and queued, then where it stopped and what cut it short. */
function textReport({ registry, repository, result, seconds, stoppedBy }: BackfillReport): string {
  return (
    `${result.stopped === 'signal' ? 'interrupted after' : 'crawled'} ${result.repositories} repositories and ${result.tags} tags of ${registry} in ${seconds.toFixed(1)} s ` +
    `(${(result.checked / Math.max(seconds, 0.001)).toFixed(1)} tags/s)${result.resumedAfter === null ? '' : `, resumed after ${result.resumedAfter}`}: ` +
    `${result.queued} queued, ${result.tagsRecorded} tags recorded${result.referrersSkipped > 0 ? `, ${result.referrersSkipped} referrers that are not signatures (skipped)` : ''}\n` +
    endReport(result, registry, repository, stoppedBy)
  );
}

/** The --json report: one object, one line. */
function jsonReport({ registry, repository, result, seconds, stoppedBy, indexed, failed }: BackfillReport): string {
  // `at`: the repository the crawl was in when it ended (the progress field `repository`).
  const { jobIds, repository: at, ...counts } = result;
  return `${JSON.stringify({ registry, repository, at, ...counts, jobs: jobIds.length, seconds: Number(seconds.toFixed(3)), stoppedBy, indexed, failed })}\n`;
}

/** Where the crawl stopped and what cut it short, for the report; empty when it read everything. */
export function endReport(result: CrawlResult, registry: string, repository: string | null, stoppedBy: InterruptSignal | null): string {
  const lines: string[] = [];
  if (result.limitsReached > 0) {
    lines.push(`${result.limitsReached} crawl ${result.limitsReached === 1 ? 'bound' : 'bounds'} reached:`);
    lines.push(...result.limits.map((l) => `  ${describeLimit(l)}`));
    if (result.limitsReached > result.limits.length) {
      lines.push(`  … and ${result.limitsReached - result.limits.length} more (each is logged)`);
    }
  }
  if (result.stopped !== null) {
    const why = result.stopped === 'signal' ? `by ${stoppedBy ?? 'a signal'}` : `at the ${result.stopped} bound`;
    const where = result.repository === null ? '' : ` in ${result.repository}`;
    const next =
      repository !== null
        ? `run it again to crawl ${registry}/${repository} from the start`
        : `the next backfill of ${registry} resumes ${result.resumeAfter === null ? 'from the top of the catalog' : `after ${result.resumeAfter}`}`;
    lines.push(`stopped ${why}${where}; ${next}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** Polls the jobs' states until none is waiting, delayed or active; resolves to how many failed. */
async function waitForJobs(queue: Queue, ids: readonly string[], io: CommandIo, signal: AbortSignal): Promise<number> {
  let pending = [...ids];
  let failed = 0;
  while (pending.length > 0 && !signal.aborted) {
    const states = await Promise.all(pending.map((id) => queue.getJobState(id)));
    failed += states.filter((s) => s === 'failed').length;
    pending = pending.filter((_, i) => states[i] !== 'completed' && states[i] !== 'failed' && states[i] !== 'unknown');
    if (pending.length > 0) {
      io.stderr.write(`backfill: waiting for ${pending.length} of ${ids.length} jobs\n`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  return failed;
}
