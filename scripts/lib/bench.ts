// Shared by the benchmark scripts: the load generator child process and percentiles.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export interface Load {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
}

export interface LoadOptions {
  url: string;
  /** POST bodies, one drawn at random per request; null sends GETs. */
  bodies: string[] | null;
  connections: number;
  seconds: number;
  /** Fixed rate; omitted: saturation (autocannon). */
  rate?: number;
  /** With `rate`: open-loop node:http client with sub-ms timing (moderate rates only) instead of autocannon's whole milliseconds. */
  precise?: boolean;
  headers?: Record<string, string>;
  /** Unmeasured seconds first; default 2. */
  warmup?: number;
}

const run = promisify(execFile);
const LOADER = fileURLToPath(new URL('../bench-load.ts', import.meta.url));

/** Runs scripts/bench-load.ts in its own process (its own core, not the server's event loop). */
export async function runLoad(opts: LoadOptions): Promise<Load> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-load-'));
  try {
    const file = join(dir, 'load.json');
    const { bodies, ...rest } = opts;
    await writeFile(file, JSON.stringify({ ...rest, ...(bodies === null ? { method: 'GET', bodies: [] } : { bodies }) }));
    const { stdout } = await run(process.execPath, [LOADER, file], { maxBuffer: 16 << 20 });
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Load;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The p-th percentile of sorted values (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** A figure over repetitions: its median and spread (min–max), and every value. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

/** The median (mean of the middle two for an even count) and spread of `values`, rounded to `digits`. */
export function spread(values: readonly number[], digits = 3): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
  const round = (v: number) => Number(v.toFixed(digits));
  return { median: round(median), min: round(sorted[0] ?? NaN), max: round(sorted.at(-1) ?? NaN), values: values.map(round) };
}
