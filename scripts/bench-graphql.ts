// GraphQL latency on a large synthetic ledger (scripts/seed-ledger.ts: 1M signatures, 100k
// repositories, 10k identities by default): `image(ref){owners signatures}` and
// `identity{images(first:50)}`, each request naming a random image or identity from a sample of
// 2,000. Load comes from autocannon in its own process (scripts/bench-load.ts), on loopback, at a
// fixed moderate rate and at saturation. Yardstick in the same run: `/healthz` on the same server,
// at the same fixed rate (p99 ratio) and at saturation (throughput ratio). Each figure is the median
// of --repeat runs (default 3), with its spread (min–max).
//
//   node scripts/bench-graphql.ts [--seconds 10] [--rate 100] [--connections 8] [--signatures 1000000]
//        [--repeat 3] [--database postgres://…/signet_bench] [--quick]
//
// Prints JSON. A measurement, not a test.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { startSignet } from '../services/app.ts';
import { loadConfig } from '../services/common/config.ts';
import { createLogger } from '../services/common/logger.ts';
import { runLoad, type Load } from './lib/bench.ts';
import { checkGraphql, graphqlBodies } from './lib/graphql-queries.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '100' },
    connections: { type: 'string', default: '8' },
    signatures: { type: 'string', default: '1000000' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_bench' },
    repeat: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    // SIGNET_PREPARED_STATEMENTS for the Signet measured.
    prepared: { type: 'string', default: 'on' },
  },
});
const quick = values.quick;
const seconds = quick ? 2 : Number(values.seconds);
const warmup = quick ? 1 : 2;
const signatures = quick ? 100_000 : Number(values.signatures);
const database = quick ? `${values.database}_quick` : values.database;
const run = promisify(execFile);
const NODE = process.execPath;
const script = (name: string) => fileURLToPath(new URL(name, import.meta.url));

// Seeding is idempotent: a ledger already holding this many signatures is reused.
const seeded = await run(
  NODE,
  [script('seed-ledger.ts'), '--database', database, '--signatures', String(signatures), '--repositories', String(signatures / 10), '--identities', String(signatures / 100)],
  { maxBuffer: 1 << 20 },
);
const seed = JSON.parse(seeded.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;

const config = loadConfig({
  DATABASE_URL: database,
  SIGNET_ROLES: 'api',
  PORT: '0',
  HOST: '127.0.0.1',
  SIGNET_QUEUE_PREFIX: `signet-bench-${process.pid}`,
  LOG_LEVEL: 'warn',
  SIGNET_PREPARED_STATEMENTS: values.prepared,
});
const signet = await startSignet(config, createLogger(config));
const db = signet.db;

const bodies = await graphqlBodies(db);

/** At a rate: the open-loop generator with sub-millisecond timing; without: autocannon at saturation. */
function load(path: string, list: string[] | null, connections: number, rate?: number): Promise<Load> {
  return runLoad({ url: `${signet.url}${path}`, bodies: list, connections, seconds, warmup, ...(rate === undefined ? {} : { rate, precise: true }) });
}

await checkGraphql(signet.url, bodies);

const connections = Number(values.connections);
const rate = Number(values.rate);
const repeat = quick ? 1 : Number(values.repeat);
const round2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** The median of each figure over the repetitions, and the spread (min–max) of the ones compared. */
function summary(loads: readonly Load[]): Load & { spread: { p99: [number, number]; rps: [number, number] } } {
  const pick = (k: keyof Load) => median(loads.map((l) => l[k]));
  const range = (k: keyof Load): [number, number] => [Math.min(...loads.map((l) => l[k])), Math.max(...loads.map((l) => l[k]))];
  return { rps: pick('rps'), p50: pick('p50'), p90: pick('p90'), p99: pick('p99'), max: pick('max'), errors: pick('errors'), non2xx: pick('non2xx'), spread: { p99: range('p99'), rps: range('rps') } };
}

const QUERIES = bodies;
type Rep = { healthz: { atRate: Load; saturated: Load }; graphql: Record<string, { atRate: Load; saturated: Load }> };
const reps: Rep[] = [];
for (let i = 0; i < repeat; i++) {
  // Each repetition measures the yardstick next to the queries, so a busier moment weighs on both.
  const healthz = { atRate: await load('/healthz', null, 2, rate), saturated: await load('/healthz', null, connections) };
  const graphql: Rep['graphql'] = {};
  for (const [name, list] of Object.entries(QUERIES)) {
    graphql[name] = { atRate: await load('/graphql', list, 2, rate), saturated: await load('/graphql', list, connections) };
  }
  reps.push({ healthz, graphql });
}
const ratios = (f: (r: Rep) => number) => {
  const xs = reps.map(f);
  return { median: round2(median(xs)), spread: [round2(Math.min(...xs)), round2(Math.max(...xs))] };
};
console.log(
  JSON.stringify(
    {
      ledger: seed,
      seconds,
      repetitions: repeat,
      ratePerSecond: rate,
      connections,
      yardstick: { '/healthz (same server)': summary(reps.map((r) => r.healthz.saturated)), '/healthz at rate': summary(reps.map((r) => r.healthz.atRate)) },
      graphql: Object.fromEntries(
        Object.keys(QUERIES).map((k) => [
          k,
          {
            atRate: summary(reps.map((r) => r.graphql[k]!.atRate)),
            saturated: summary(reps.map((r) => r.graphql[k]!.saturated)),
            saturatedRpsVsHealthz: ratios((r) => r.graphql[k]!.saturated.rps / r.healthz.saturated.rps).median,
            saturatedRpsVsHealthzSpread: ratios((r) => r.graphql[k]!.saturated.rps / r.healthz.saturated.rps).spread,
            p99AtRateVsHealthz: ratios((r) => r.graphql[k]!.atRate.p99 / r.healthz.atRate.p99),
          },
        ]),
      ),
    },
    null,
    2,
  ),
);
for (const step of signet.shutdownSteps) {
  await step.run().catch(() => undefined);
}
