import type { CrawlProgress } from '../core/crawl.ts';

export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): unknown;
}

/** One line of progress, redrawn in place on a terminal; nothing at all elsewhere (CI logs, pipes, files). */
export interface ProgressLine {
  /** `done` of `total` (null when the total is not known) and what to say about it. */
  update(text: string, done: number, total: number | null): void;
  /** Ends the line (terminal) so what follows starts on a fresh one. */
  done(): void;
}

const BAR_WIDTH = 24;

/**
 * At most ten redraws a second, and always the last. Hand-written because no progress package is
 * a dependency and this is twenty lines.
 */
export function createProgressLine(out: ProgressStream, now: () => number = Date.now): ProgressLine {
  let lastDraw = -Infinity;
  let drawn = false;
  return {
    update(text, done, total) {
      if (out.isTTY !== true || (now() - lastDraw < 100 && done !== total)) {
        return;
      }
      lastDraw = now();
      const filled = total === null || total === 0 ? 0 : Math.round((BAR_WIDTH * Math.min(done, total)) / total);
      const line = `${total === null ? '' : `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] `}${text}`;
      out.write(`\r${line.slice(0, Math.max((out.columns ?? 120) - 1, 20))}\x1b[K`);
      drawn = true;
    },
    done() {
      if (drawn) {
        out.write('\n');
        drawn = false;
      }
    },
  };
}

export interface ProgressReporter {
  update(p: CrawlProgress): void;
  done(): void;
}

/** A crawl's progress: checked over listed tags, with its rate and the repository it is in. */
export function createProgressReporter(out: ProgressStream, now: () => number = Date.now): ProgressReporter {
  const line = createProgressLine(out, now);
  const started = now();
  return {
    update(p) {
      const secs = Math.max((now() - started) / 1000, 0.001);
      line.update(
        `${p.repositories} repositories, ${p.checked}/${p.tags} tags checked, ${p.queued} queued, ${(p.checked / secs).toFixed(1)} tags/s${p.repository === null ? '' : ` — ${p.repository}`}`,
        p.checked,
        p.tags,
      );
    },
    done: () => line.done(),
  };
}
