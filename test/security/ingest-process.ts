// An ingest-only Signet as a child process (`node services/main.ts`, as `npm start` runs it), so a
// test can measure what the real process does: its resident memory, its sockets.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/net.ts';
import { deleteQueueKeys, eventually, TEST_REDIS_URL } from '../helpers/signet.ts';

const MAIN = fileURLToPath(new URL('../../services/main.ts', import.meta.url));

export interface IngestProcess {
  readonly port: number;
  readonly pid: number;
  readonly url: string;
  /** Everything the process wrote to stdout and stderr. */
  output(): string;
  /** SIGTERM, wait for the exit, drop the queue keys. */
  stop(): Promise<void>;
}

/** Starts `services/main.ts` with `SIGNET_ROLES=ingest` and waits until `/readyz` answers 200. */
export async function startIngestProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<IngestProcess> {
  const port = await freePort();
  const prefix = `signet-sec-${randomBytes(4).toString('hex')}`;
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      REDIS_URL: TEST_REDIS_URL,
      PORT: String(port),
      HOST: '127.0.0.1',
      SIGNET_ROLES: 'ingest',
      SIGNET_QUEUE_PREFIX: prefix,
      SIGNET_TUF_REFRESH: '0',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000).unref())]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await deleteQueueKeys(TEST_REDIS_URL, prefix);
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) {
          throw new Error(`signet exited ${child.exitCode}: ${output}`);
        }
        return (await fetch(`${url}/readyz`)).status === 200 ? true : undefined;
      },
      'the ingest process to be ready',
      30_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, pid: child.pid!, url, output: () => output, stop };
}

/** A field of /proc/<pid>/status in bytes (`VmRSS`: resident now, `VmHWM`: the peak since start). */
export function procMemory(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) {
    throw new Error(`no ${field} in /proc/${pid}/status`);
  }
  return Number(m[1]) * 1024;
}
