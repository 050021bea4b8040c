// What a benchmark's processes cost, read from the machine rather than estimated: CPU time and
// memory of a process (/proc, Linux), the Postgres backends serving one database (their CPU time
// and the database's statement and row counters), and a Redis server's own counters. Used by
// bench-scale to turn its runs into per-push and per-request costs.
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import pg from 'pg';

/** User + system CPU time of a process in ms, null when it is gone (or /proc is not there). */
export async function cpuMs(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) {
    return null;
  }
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line,
  // in clock ticks (100 per second on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident memory of a process now and at its peak (VmHWM), in MiB; null when it is gone. */
export async function memoryMiB(pid: number): Promise<{ rss: number; peak: number } | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  if (status === null) {
    return null;
  }
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

/** Sums the CPU time of processes over a window: `start()`, then `stop()` gives ms per process and in all. */
export function cpuWindow(pids: () => readonly number[]) {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const sample = async () => {
    for (const pid of pids()) {
      const ms = await cpuMs(pid);
      if (ms !== null) {
        if (!first.has(pid)) {
          first.set(pid, ms);
        }
        last.set(pid, ms);
      }
    }
  };
  let timer: NodeJS.Timeout | null = null;
  return {
    async start(everyMs = 500) {
      await sample();
      timer = setInterval(() => void sample(), everyMs);
    },
    /** CPU ms used since `start()`, by every process seen (processes seen late count from then). */
    async stop(): Promise<number> {
      if (timer !== null) {
        clearInterval(timer);
      }
      await sample();
      let total = 0;
      for (const [pid, end] of last) {
        total += end - (first.get(pid) ?? end);
      }
      return total;
    },
  };
}

/** The database-wide counters of pg_stat_database that say what a workload asked of Postgres. */
export interface PgCounters {
  /** Transactions committed: each statement outside a transaction counts as one. */
  readonly xacts: number;
  readonly rowsRead: number;
  readonly rowsWritten: number;
  /** Shared buffer reads, from cache or not (8 KiB pages). */
  readonly blocks: number;
}

/**
 * One database's backends and counters, read through a connection to the server's `postgres`
 * database (so the readings are not counted against the one measured).
 */
export async function pgObserver(serverUrl: string, database: string, opts: { excludeApplication?: string } = {}) {
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await client.connect();
  let backends: number[] = [];
  const refresh = async () => {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name IS DISTINCT FROM $2', [
      database,
      opts.excludeApplication ?? null,
    ]);
    backends = rows.map((r) => r.pid);
  };
  await refresh();
  const refresher = setInterval(() => void refresh().catch(() => undefined), 500);
  return {
    /** The backends connected to the database now (refreshed twice a second). */
    backends: () => backends,
    async counters(): Promise<PgCounters> {
      // Backends report their counters when idle, at most once a second.
      await client.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await client.query<Record<string, string>>(
        `SELECT xact_commit + xact_rollback AS xacts, tup_returned + tup_fetched AS rows_read,
                tup_inserted + tup_updated + tup_deleted AS rows_written, blks_hit + blks_read AS blocks
         FROM pg_stat_database WHERE datname = $1`,
        [database],
      );
      const r = rows[0]!;
      return { xacts: Number(r.xacts), rowsRead: Number(r.rows_read), rowsWritten: Number(r.rows_written), blocks: Number(r.blocks) };
    },
    async close() {
      clearInterval(refresher);
      await client.end();
    },
  };
}

/** The difference of two readings of counters. */
export function delta<T extends object>(before: T, after: T): T {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v as number) - ((before as Record<string, number>)[k] ?? 0)])) as T;
}

/** A Redis server's own counters: commands, network bytes both ways, CPU ms (all its threads), memory. */
export interface RedisCounters {
  readonly commands: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly cpuMs: number;
  readonly memoryBytes: number;
}

export async function redisCounters(url: string): Promise<RedisCounters> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info();
    const n = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
    return {
      commands: n('total_commands_processed'),
      bytesIn: n('total_net_input_bytes'),
      bytesOut: n('total_net_output_bytes'),
      cpuMs: Math.round((n('used_cpu_user') + n('used_cpu_sys')) * 1000),
      memoryBytes: n('used_memory'),
    };
  } finally {
    redis.disconnect();
  }
}

export type PgObserver = Awaited<ReturnType<typeof pgObserver>>;

/** What one stretch of work cost some processes, one database's Postgres backends and a Redis server. */
export interface Cost<T> {
  readonly result: T;
  /** The work's duration: what CPU and Redis were measured over (Postgres's counters are read after settling).  */
  readonly wallMs: number;
  /** CPU ms of the processes `pids` named. */
  readonly cpuMs: number;
  readonly pgCpuMs: number;
  /** Null unless `settleMs` gave the backends time to report them. */
  readonly pg: PgCounters | null;
  readonly redis: RedisCounters;
}

/**
 * Backends report their statement and row counters when idle, at most once a second and otherwise
 * after up to 10 s (PGSTAT_IDLE_INTERVAL): a window whose Postgres counters are read waits this long after its work.
 */
export const PG_COUNTERS_SETTLE_MS = 11_000;

/** Measures `work`; with `settleMs` ≥ {@link PG_COUNTERS_SETTLE_MS} the Postgres counters too. */
export async function costOf<T>(
  opts: { pids: () => readonly number[]; pg: PgObserver; redisUrl: string; settleMs?: number },
  work: () => Promise<T>,
): Promise<Cost<T>> {
  const settleMs = opts.settleMs ?? 0;
  const own = cpuWindow(opts.pids);
  const backends = cpuWindow(() => opts.pg.backends());
  const [pgBefore, redisBefore] = [await opts.pg.counters(), await redisCounters(opts.redisUrl)];
  const started = performance.now();
  await own.start();
  await backends.start();
  const result = await work();
  const [cpu, pgCpu] = [await own.stop(), await backends.stop()];
  const redis = delta(redisBefore, await redisCounters(opts.redisUrl));
  const wallMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, settleMs));
  const pg = settleMs >= PG_COUNTERS_SETTLE_MS ? delta(pgBefore, await opts.pg.counters()) : null;
  return { result, wallMs, cpuMs: cpu, pgCpuMs: pgCpu, pg, redis };
}

/** A cost less what the same processes spend idle over as long (`idle` measured with nothing to do). */
export function lessIdle<T>(cost: Cost<T>, idle: Cost<unknown>): Cost<T> {
  const k = cost.wallMs / idle.wallMs;
  const scaled = (x: number, i: number) => Math.max(0, x - i * k);
  return {
    ...cost,
    cpuMs: scaled(cost.cpuMs, idle.cpuMs),
    pgCpuMs: scaled(cost.pgCpuMs, idle.pgCpuMs),
    pg:
      cost.pg === null || idle.pg === null
        ? cost.pg
        : {
            xacts: scaled(cost.pg.xacts, idle.pg.xacts),
            rowsRead: scaled(cost.pg.rowsRead, idle.pg.rowsRead),
            rowsWritten: scaled(cost.pg.rowsWritten, idle.pg.rowsWritten),
            blocks: scaled(cost.pg.blocks, idle.pg.blocks),
          },
    redis: {
      commands: scaled(cost.redis.commands, idle.redis.commands),
      bytesIn: scaled(cost.redis.bytesIn, idle.redis.bytesIn),
      bytesOut: scaled(cost.redis.bytesOut, idle.redis.bytesOut),
      cpuMs: scaled(cost.redis.cpuMs, idle.redis.cpuMs),
      memoryBytes: cost.redis.memoryBytes,
    },
  };
}
