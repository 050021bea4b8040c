// The decision table full and bounded (SIGNET_DECISION_TABLE_MAX), on a synthetic ledger
// (scripts/seed-ledger.ts, plus one decision per image): warm start (load from Postgres until the
// table answers), RSS and heap after GC, and the latency of a miss (answered from Postgres, then
// kept) and of the hit that follows, as p50/p99 over `--lookups` images decided longest ago.
// The bounded table runs twice: as deployed, and with SIGNET_PREPARED_STATEMENTS=off (every
// statement parsed and planned again: the misses' baseline). Each configuration runs `--reps`
// times, in turn, each in a fresh process; medians with their spread.
//
//   node --expose-gc scripts/bench-table.ts [--signatures 400000] [--bounded 20000] [--reps 3] [--lookups 2000]
//
// Prints JSON. A measurement, not a test.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { DecisionTable } from '../services/api/decision-table.ts';
import { createDb } from '../services/common/db/client.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { createRedis } from '../services/common/redis.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_bench_table' },
    signatures: { type: 'string', default: '400000' },
    bounded: { type: 'string', default: '20000' },
    reps: { type: 'string', default: '3' },
    lookups: { type: 'string', default: '2000' },
    child: { type: 'string' },
    unprepared: { type: 'boolean', default: false },
  },
});
const POLICY = 'allow_without_verification:\n  "ghcr.io": ["*/*"]\n';
const policy = parsePolicy(POLICY);
const log = createLogger({ logLevel: 'silent' });

interface Run {
  readonly maxEntries: number;
  readonly entries: number;
  readonly warmMs: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly missP50Ms: number;
  readonly missP99Ms: number;
  readonly hitP50Ms: number;
  readonly hitP99Ms: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** One process: load a table of `maxEntries`, then time lookups of the images decided longest ago. */
async function child(maxEntries: number, prepare: boolean): Promise<Run> {
  const db = createDb(values.database, log, { prepare });
  const redis = createRedis({ url: 'redis://127.0.0.1:6379', topology: { kind: 'single' }, queuePrefix: 'bench', feedMaxLen: 1000, waitReplicas: 0 }, 'worker', log);
  const table = new DecisionTable(db, policy, log, null, { maxEntries });
  const started = performance.now();
  await table.start(redis, { key: `signet-bench-table-${randomBytes(4).toString('hex')}`, maxLen: 1000 });
  const warmMs = performance.now() - started;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  const { rows } = await sql<{ ref: string }>`
    SELECT g.host || '/' || r.name || '@' || m.digest AS ref FROM decisions d JOIN manifests m ON m.id = d.manifest_id
    JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
    WHERE d.policy_version = ${policy.version} ORDER BY d.decided_at, d.manifest_id LIMIT ${Number(values.lookups)}`.execute(db);
  const time = async () => {
    const ms: number[] = [];
    for (const { ref } of rows) {
      const t = performance.now();
      await table.lookup(ref);
      ms.push(performance.now() - t);
    }
    return ms;
  };
  const first = await time();
  const second = await time();
  await table.stop();
  redis.disconnect();
  await db.destroy();
  return {
    maxEntries,
    entries: table.size,
    warmMs: Math.round(warmMs),
    rssMiB: Math.round(rss / 2 ** 20),
    heapMiB: Math.round(heapUsed / 2 ** 20),
    missP50Ms: round(pct(first, 50)),
    missP99Ms: round(pct(first, 99)),
    hitP50Ms: round(pct(second, 50)),
    hitP99Ms: round(pct(second, 99)),
  };
}

if (values.child !== undefined) {
  console.log(JSON.stringify(await child(Number(values.child), !values.unprepared)));
  process.exit(0);
}

execFileSync(process.execPath, ['scripts/seed-ledger.ts', '--database', values.database, '--signatures', values.signatures], { stdio: ['ignore', 'ignore', 'inherit'] });
const db = createDb(values.database, log, { statementTimeoutMs: 30 * 60_000 });
// One decision per image under the bench policy, decided when it was indexed.
await sql`INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, verified_at, decided_at)
  SELECT id, ${policy.version}, true, 'allowed_without_verification', 'allowed without verification', '[]', coalesce(indexed_at, now()), coalesce(indexed_at, now()) - (random() * interval '30 days')
  FROM manifests ON CONFLICT DO NOTHING`.execute(db);
const images = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM decisions WHERE policy_version = ${policy.version}`.execute(db)).rows[0]!.n);
await db.destroy();

const configs = { full: [images + 1, []], bounded: [Number(values.bounded), []], boundedUnprepared: [Number(values.bounded), ['--unprepared']] } as const;
const results: Record<string, Run[]> = {};
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const [name, [max, extra]] of Object.entries(configs)) {
    const out = execFileSync(process.execPath, ['--expose-gc', 'scripts/bench-table.ts', '--database', values.database, '--lookups', values.lookups, '--child', String(max), ...extra]);
    (results[name] ??= []).push(JSON.parse(out.toString()) as Run);
  }
}
const summary = (runs: Run[]) =>
  Object.fromEntries(
    (['entries', 'warmMs', 'rssMiB', 'heapMiB', 'missP50Ms', 'missP99Ms', 'hitP50Ms', 'hitP99Ms'] as const).map((k) => {
      const xs = runs.map((r) => r[k]);
      return [k, { median: pct(xs, 50), min: Math.min(...xs), max: Math.max(...xs) }];
    }),
  );
console.log(JSON.stringify({ images, reps: Number(values.reps), lookups: Number(values.lookups), full: summary(results.full!), bounded: summary(results.bounded!), boundedUnprepared: summary(results.boundedUnprepared!) }, null, 2));
