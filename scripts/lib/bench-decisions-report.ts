// The decision benchmark's part of BENCHMARKS.md: its goal rows and its section, rendered from
// scripts/bench-decisions.ts's JSON. Shared by `npm run bench` and `npm run bench -- --only decisions`.
/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   renders scripts/bench-decisions.ts's JSON, whose shape that script owns */
import type { Spread } from './bench.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the benchmark's own JSON

/** Throughput goal: Signet's saturated requests/s ÷ its fair yardstick's, worst endpoint. */
export const RPS_GOAL = 0.8;
/** Latency goal: Signet's p99 ÷ its yardstick's p99 at the same fixed rate, worst endpoint. */
export const P99_GOAL = 1.5;

const ms = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(0));
const ok = (met: boolean) => (met ? 'met' : '**not met**');
/** `median [min–max]` of a figure over the repetitions. */
export const withSpread = (s: Spread, f: (v: number) => string = (v) => v.toFixed(2)) => `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;

function perEndpoint(d: Json): Json[] {
  return Object.values(d.endpoints as Record<string, Record<string, Json>>).flatMap((byProto) => Object.values(byProto));
}

/** The goals table's decision rows: the worst endpoint's median ratio, HTTP or HTTPS. */
/** Decision-table memory goal: heap bytes per entry at 1M entries. */
const BYTES_GOAL = 200;

export function decisionGoalRows(d: Json): string[][] {
  const all = perEndpoint(d);
  const rps = Math.min(...all.map((x) => (x.rpsVsBare as Spread).median));
  const p99 = Math.max(...all.map((x) => (x.p99VsBare as Spread).median));
  const n = d.repetitions as number;
  const bytes = d.decisionTableBytesPerEntry as Record<string, number>;
  return [
    [`decision throughput ÷ fair yardstick (worst endpoint, HTTP or HTTPS; median of ${n})`, `≥ ${RPS_GOAL}`, rps.toFixed(2), ok(rps >= RPS_GOAL)],
    [`decision p99 ÷ yardstick p99 at ${d.moderateRate as number}/s (worst endpoint; median of ${n})`, `≤ ${P99_GOAL}`, p99.toFixed(2), ok(p99 <= P99_GOAL)],
    ['decision-table bytes per entry at 1M', `≤ ${BYTES_GOAL}`, String(bytes['1000000']), ok(bytes['1000000']! <= BYTES_GOAL)],
  ];
}

/** Section 1 of BENCHMARKS.md. */
export function decisionSection(d: Json, table: (head: string[], body: string[][]) => string): string {
  const rows = Object.entries(d.endpoints as Record<string, Record<string, Json>>).flatMap(([name, byProto]) =>
    Object.entries(byProto).map(([proto, x]) => [
      name,
      proto.toUpperCase(),
      `${x.requestBytes as number} / ${x.responseBytes as number}`,
      withSpread(x.signet.saturatedRps as Spread, (v) => v.toFixed(0)),
      withSpread(x.bare.saturatedRps as Spread, (v) => v.toFixed(0)),
      withSpread(x.rpsVsBare as Spread),
      `${withSpread(x.signet.p99AtRate as Spread, ms)} / ${withSpread(x.bare.p99AtRate as Spread, ms)}`,
      withSpread(x.p99VsBare as Spread),
    ]),
  );
  const bytes = d.decisionTableBytesPerEntry as Record<string, number>;
  return `## 1. Decision endpoints (\`scripts/bench-decisions.ts\`)

An API-only Signet with 10 decided images. Each endpoint is set against its own **fair yardstick**:
a bare \`node:http\`/\`node:https\` server that reads and parses the same request (the JSON body, or
the query string) and answers the very bytes Signet answered for it, captured once from Signet at
the start of the run. The ratio is then Signet's own overhead (routing, validation, lookups,
serialisation), not the size of its answer.
Saturation: autocannon, ${d.connections as number} connections, ${d.seconds as number} s after ${d.warmup as number} s of warm-up.
Latency: an open-loop generator at a fixed ${d.moderateRate as number} requests/s with sub-millisecond timing.
Signet and its yardstick run back to back (alternating which goes first), and every figure is the
**median of ${d.repetitions as number} repetitions [min–max]**; each ratio is taken within a repetition.

${table(['endpoint', 'protocol', 'request / response bytes', 'Signet req/s', 'yardstick req/s', 'Signet ÷ yardstick', `p99 ms at ${d.moderateRate as number}/s: Signet / yardstick`, 'p99 ratio'], rows)}

Decision-table memory (synthetic decisions applied as ledger events to a table bounded at exactly
that many entries and built inside the measurement, so its preallocated slots count; heap and
off-heap after GC): ${String(bytes['100000'])} bytes per entry at 100k, ${String(bytes['1000000'])} at 1M.
${d.admissionRecording === undefined ? '' : recordingParagraph(d.admissionRecording as Json)}`;
}

const ratio = (r: Json) => `median ${(r.median as number).toFixed(2)} (${(r.min as number).toFixed(2)}–${(r.max as number).toFixed(2)})`;

/** The admission record's cost, on ÷ off. */
function recordingParagraph(rec: Json): string {
  return `
The admission record's cost: \`/admission/validate\` (a Pod with 3 containers, HTTP) on a Signet
recording every answer (the default) and on one with \`SIGNET_ADMISSION_RECORD=off\`, alternating
which goes first, ${rec.repetitions as number} times each: saturated, then (once the record has written what the
saturated run left) at the fixed rate. Saturated throughput on ÷ off: ${ratio(rec.throughputRatio as Json)}; Signet's
CPU per request answered (the batched writes included; Postgres's CPU is not in it) on ÷ off:
${ratio(rec.cpuPerRequestRatio as Json)}; p99 at the fixed rate on ÷ off: ${rec.p99AtRateRatio === undefined ? 'not measured' : ratio(rec.p99AtRateRatio as Json)}. Meanwhile the record
wrote ${rec.recordsWritten as number} rows for ${rec.answered as number} answered requests and dropped ${rec.recordsDropped as number}.
`;
}
