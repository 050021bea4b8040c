// The GraphQL benchmark's part of BENCHMARKS.md: its goal rows and section 5, rendered from
// scripts/bench-graphql.ts's JSON. Shared by `npm run bench` and `npm run bench -- --only graphql`.
/* eslint-disable @typescript-eslint/no-unsafe-member-access -- renders the benchmark's own JSON */

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the benchmark's own JSON

const ms = (v: unknown) => (typeof v === 'number' ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) : String(v));
const ok = (met: boolean) => (met ? 'met' : '**not met**');

/** Issue 19's goals at the fixed rate on the 1M seed: p99 per query, and saturated throughput ÷ /healthz. */
const P99_GOAL_MS: Record<string, number> = { 'image(ref){owners signatures}': 3, 'identity{images(first:50)}': 10 };
const SATURATED_GOAL = 0.1;

/** The goals table's GraphQL rows. */
export function graphqlGoalRows(j: Json): string[][] {
  const gq = j.graphql as Record<string, Json>;
  const rate = j.ratePerSecond as number;
  return Object.entries(gq).flatMap(([q, x]) => [
    [
      `GraphQL \`${q}\` p99 at ${rate}/s (median of ${j.repetitions as number})`,
      `≤ ${P99_GOAL_MS[q] ?? '—'} ms`,
      `${ms(x.atRate.p99)} ms (${ms(x.atRate.spread.p99[0])}–${ms(x.atRate.spread.p99[1])})`,
      P99_GOAL_MS[q] === undefined ? '' : ok(x.atRate.p99 <= P99_GOAL_MS[q]),
    ],
    [
      `GraphQL \`${q}\` saturated throughput ÷ \`/healthz\` (median of ${j.repetitions as number})`,
      `≥ ${SATURATED_GOAL}`,
      `${x.saturatedRpsVsHealthz as number} (${(x.saturatedRpsVsHealthzSpread as number[]).join('–')})`,
      ok(x.saturatedRpsVsHealthz >= SATURATED_GOAL),
    ],
  ]);
}

/** Section 5 of BENCHMARKS.md. */
export function graphqlSection(j: Json, table: (head: string[], body: string[][]) => string): string {
  const gq = j.graphql as Record<string, Json>;
  return `## 5. GraphQL (\`scripts/bench-graphql.ts\`)

A synthetic ledger (\`scripts/seed-ledger.ts\`): ${String(j.ledger.signatures)} signatures. Each request names a random one of
2,000 sampled images or identities. Yardstick: \`/healthz\` on the same server, ${String(j.yardstick['/healthz (same server)'].rps)} requests/s
saturated, p99 ${ms(j.yardstick['/healthz at rate'].p99)} ms at ${String(j.ratePerSecond)}/s. Medians of ${String(j.repetitions)} repetitions (each measures the
yardstick next to the queries), spread in brackets.

${table(
  ['query', `at ${String(j.ratePerSecond)}/s: p50 / p99 ms`, 'saturated req/s', 'saturated p50 / p99 ms', 'saturated ÷ /healthz'],
  Object.entries(gq).map(([q, x]) => [
    `\`${q}\``,
    `${ms(x.atRate.p50)} / ${ms(x.atRate.p99)} [${ms(x.atRate.spread.p99[0])}–${ms(x.atRate.spread.p99[1])}]`,
    `${String(x.saturated.rps)} [${(x.saturated.spread.rps as number[]).join('–')}]`,
    `${ms(x.saturated.p50)} / ${ms(x.saturated.p99)}`,
    `${String(x.saturatedRpsVsHealthz)} [${(x.saturatedRpsVsHealthzSpread as number[]).join('–')}]`,
  ]),
)}
`;
}
