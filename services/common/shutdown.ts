import type { Logger } from './logger.ts';

export interface ShutdownStep {
  readonly name: string;
  run(): Promise<unknown>;
}

/**
 * Runs `steps` in order, once, on the first SIGTERM/SIGINT (or when the returned function is
 * called). The whole sequence has a deadline because `worker.close()` waits for active jobs
 * without one. Resolves to the exit code; only main.ts exits.
 */
export function registerShutdown(
  log: Logger,
  steps: readonly ShutdownStep[],
  deadlineMs: number,
  onDone: (code: number) => void,
): () => Promise<number> {
  let running: Promise<number> | null = null;
  const shutdown = (): Promise<number> => {
    running ??= (async () => {
      let code = 0;
      const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, deadlineMs, 'timeout').unref());
      const sequence = (async () => {
        for (const step of steps) {
          try {
            await step.run();
            log.debug({ step: step.name }, 'shutdown step done');
          } catch (err) {
            code = 1;
            log.error({ err, step: step.name }, 'shutdown step failed');
          }
        }
      })();
      if ((await Promise.race([sequence, deadline])) === 'timeout') {
        log.error({ deadlineMs }, 'shutdown deadline passed; exiting anyway');
        code = 1;
      }
      onDone(code);
      return code;
    })();
    return running;
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'shutting down');
      void shutdown();
    });
  }
  return shutdown;
}
