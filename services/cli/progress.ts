import type { CrawlProgress } from '../core/crawl.ts';

export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): unknown;
}

export interface ProgressReporter {
  update(p: CrawlProgress): void;
  /** Ends the bar's line (terminal) so what follows starts on a fresh one. */
  done(): void;
}

const BAR_WIDTH = 24;

/**
 * Crawl progress: on a terminal, one line redrawn in place (at most ten times a second) with a bar
 * of checked over listed tags; otherwise (CI logs, files) a plain line every `every` checked tags.
 * Hand-written because no progress package is a dependency and this is twenty lines.
 */
export function createProgressReporter(out: ProgressStream, every = 100, now: () => number = Date.now): ProgressReporter {
  let lastDraw = -Infinity;
  let lastLine = 0;
  let drawn = false;
  const started = now();
  const describe = (p: CrawlProgress) => {
    const secs = Math.max((now() - started) / 1000, 0.001);
    return `${p.repositories} repositories, ${p.checked}/${p.tags} tags checked, ${p.queued} queued, ${(p.checked / secs).toFixed(1)} tags/s${p.repository === null ? '' : ` — ${p.repository}`}`;
  };
  return {
    update(p) {
      if (out.isTTY === true) {
        if (now() - lastDraw < 100 && p.checked < p.tags) {
          return;
        }
        lastDraw = now();
        const filled = p.tags === 0 ? 0 : Math.round((BAR_WIDTH * p.checked) / p.tags);
        const line = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${describe(p)}`;
        out.write(`\r${line.slice(0, Math.max((out.columns ?? 120) - 1, 20))}\x1b[K`);
        drawn = true;
      } else if (p.checked - lastLine >= every) {
        lastLine = p.checked - (p.checked % every);
        out.write(`backfill: ${describe(p)}\n`);
      }
    },
    done() {
      if (drawn) {
        out.write('\n');
        drawn = false;
      }
    },
  };
}
