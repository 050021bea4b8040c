import type { CrawlLimits } from '../../common/config.ts';
import { ReconcileJob } from '../../common/jobs/reconcile.ts';
import { crawlRegistry, describeLimit, type CrawlDeps, type CrawlResult } from '../../core/crawl.ts';
import { implementJob } from '../kit.ts';

type PassResult = Record<
  string,
  (Pick<CrawlResult, 'repositories' | 'tags' | 'queued' | 'tagsRecorded' | 'stopped' | 'limitsReached'> & { limits: string[] }) | { error: string }
>;

/**
 * One reconciliation pass: each registry is crawled in turn. A registry that fails is logged and
 * retried on the next pass; the others are still crawled. A crawl that reaches one of `limits` is
 * logged and reported (`limited`), not failed: a bound that stops it leaves its cursor for the next
 * pass to resume after. Closing the worker stops a running crawl; its cursor lets the next pass resume.
 */
export function reconcileJob(deps: CrawlDeps, configured: readonly string[], limits?: CrawlLimits) {
  return implementJob(ReconcileJob, {
    async handle({ data, log, signal }) {
      const registries = data.registries.length > 0 ? data.registries : configured;
      const results: PassResult = {};
      for (const registry of registries) {
        if (signal.aborted) {
          break;
        }
        const started = performance.now();
        try {
          const r = await crawlRegistry(deps, registry, null, { signal, limits });
          results[registry] = {
            repositories: r.repositories,
            tags: r.tags,
            queued: r.queued,
            tagsRecorded: r.tagsRecorded,
            stopped: r.stopped,
            limitsReached: r.limitsReached,
            limits: r.limits.map(describeLimit),
          };
          log.info({ registry, ...results[registry], resumeAfter: r.resumeAfter, ms: Math.round(performance.now() - started) }, 'reconciled');
        } catch (err) {
          results[registry] = { error: (err as Error).message };
          log.warn({ err, registry }, 'reconciliation crawl failed; the next pass retries');
        }
      }
      return results;
    },
    result: (results) => {
      const all = Object.values(results);
      return all.some((r) => 'error' in r) ? 'partial' : all.some((r) => 'limitsReached' in r && r.limitsReached > 0) ? 'limited' : 'reconciled';
    },
  });
}
