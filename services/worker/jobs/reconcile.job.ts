import { ReconcileJob } from '../../common/jobs/reconcile.ts';
import { crawlRegistry, type CrawlDeps, type CrawlResult } from '../../core/crawl.ts';
import { implementJob } from '../kit.ts';

type PassResult = Record<string, Pick<CrawlResult, 'repositories' | 'tags' | 'queued' | 'tagsRecorded'> | { error: string }>;

/**
 * One reconciliation pass: each registry is crawled in turn. A registry that fails is logged and
 * retried on the next pass; the others are still crawled. Closing the worker stops a running crawl
 * between repositories; its cursor lets the next pass resume.
 */
export function reconcileJob(deps: CrawlDeps, configured: readonly string[]) {
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
          const r = await crawlRegistry(deps, registry, null, { signal });
          results[registry] = { repositories: r.repositories, tags: r.tags, queued: r.queued, tagsRecorded: r.tagsRecorded };
          log.info({ registry, ...results[registry], ms: Math.round(performance.now() - started) }, 'reconciled');
        } catch (err) {
          results[registry] = { error: (err as Error).message };
          log.warn({ err, registry }, 'reconciliation crawl failed; the next pass retries');
        }
      }
      return results;
    },
    result: (results) => (Object.values(results).some((r) => 'error' in r) ? 'partial' : 'reconciled'),
  });
}
