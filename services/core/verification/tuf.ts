import { initTUF } from '@sigstore/tuf';
import type { Logger } from '../../common/logger.ts';
import { parseTrustedRoot, type LoadedTrustedRoot } from './trust.ts';

export interface TufOptions {
  /** The TUF repository, e.g. https://tuf-repo-cdn.sigstore.dev (public-good). */
  readonly mirrorUrl: string;
  /** The repository's initial `root.json`; null uses the seed @sigstore/tuf ships for public-good. */
  readonly rootPath: string | null;
  /** Where TUF metadata and targets are cached between refreshes (and restarts). */
  readonly cachePath: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface TufRefresher {
  /** One refresh; resolves to the root it fetched, or null when it failed (logged). Never throws. */
  refresh(): Promise<LoadedTrustedRoot | null>;
  stop(): void;
}

/**
 * Keeps a trusted root fresh from a TUF repository in the background: refreshes at start and
 * every `intervalMs`, and calls `onRoot` when the fetched `trusted_root.json` differs from the last
 * one. Verification never waits for it, and a failed refresh (offline, air-gapped, a mirror that
 * is down, metadata that does not verify) only logs: the roots loaded from files and from earlier
 * refreshes stay in force.
 */
export function startTufRefresher(opts: TufOptions, log: Logger, onRoot: (root: LoadedTrustedRoot) => void): TufRefresher {
  let last: string | null = null;
  let running: Promise<LoadedTrustedRoot | null> | null = null;
  let stopped = false;
  const refresh = (): Promise<LoadedTrustedRoot | null> => {
    running ??= (async () => {
      const started = performance.now();
      try {
        const tuf = await initTUF({
          mirrorURL: opts.mirrorUrl,
          cachePath: opts.cachePath,
          ...(opts.rootPath === null ? {} : { rootPath: opts.rootPath }),
          forceCache: false,
          retry: false,
          timeout: opts.timeoutMs,
        });
        const text = await tuf.getTarget('trusted_root.json');
        const root = parseTrustedRoot(Buffer.from(text, 'utf8'), `tuf:${opts.mirrorUrl}`);
        const ms = Math.round(performance.now() - started);
        if (root.version !== last && !stopped) {
          last = root.version;
          log.info({ mirror: opts.mirrorUrl, trustRootVersion: root.version, ms }, 'TUF refresh: trusted root in force');
          onRoot(root);
        } else {
          log.debug({ mirror: opts.mirrorUrl, ms }, 'TUF refresh: trusted root unchanged');
        }
        return root;
      } catch (err) {
        log.warn({ mirror: opts.mirrorUrl, err: { message: (err as Error).message } }, 'TUF refresh failed; verifying with the trusted roots already loaded');
        return null;
      } finally {
        running = null;
      }
    })();
    return running;
  };
  void refresh();
  const timer = setInterval(() => void refresh(), opts.intervalMs);
  timer.unref();
  return {
    refresh,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
