import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TEST_REDIS_URL, type TestSignet } from './signet.ts';

const CLI = fileURLToPath(new URL('../../services/cli/main.ts', import.meta.url));

/**
 * Runs `signet backfill <args>` as a separate process, as an operator would, against the database
 * and queue of `signet` (same Redis prefix), with `registryHost` reachable over plain HTTP.
 */
export function runBackfill(signet: TestSignet, registryHost: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [CLI, 'backfill', ...args], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: signet.config.database.url,
      REDIS_URL: TEST_REDIS_URL,
      SIGNET_QUEUE_PREFIX: signet.config.redis.queuePrefix,
      SIGNET_INSECURE_REGISTRIES: registryHost,
      LOG_LEVEL: 'warn',
    },
  });
}

/** Runs `signet <args>` as a separate process with exactly `env` (plus PATH), in `cwd` when given; resolves with its exit code, never throws on one. */
export function runSignetCli(args: readonly string[], env: Record<string, string>, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env }, ...(cwd === undefined ? {} : { cwd }) }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(new Error(`signet ${args.join(' ')} did not run: ${err.message}`, { cause: err }));
        return;
      }
      const code = err === null ? 0 : (err.code as number);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningCli {
  readonly child: ChildProcess;
  /** What it wrote so far. */
  readonly output: { stdout: string; stderr: string };
  /** Resolves when it exits, with its code (null when a signal killed it) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `signet <args>` as a separate process with exactly `env` (plus PATH), for a test to signal while it runs. */
export function startSignetCli(args: readonly string[], env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { child, output, exited };
}
