// The webhook intake benchmark's part of BENCHMARKS.md: its goal rows and its section, rendered
// from scripts/bench-intake.ts's JSON. Shared by `npm run bench` and `npm run bench -- --only intake`.
import type { Spread } from './bench.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the benchmark's own JSON

/** Intake goal: Signet's deliveries/s ÷ the bare node:http yardstick's, serial and concurrent. */
export const INTAKE_GOAL = 0.5;

const ok = (met: boolean) => (met ? 'met' : '**not met**');
const s = (x: Spread, digits = 0) => `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})`;

/** The goals table's intake rows: median ratios to the yardstick, serial and concurrent. */
export function intakeGoalRows(j: Json): string[][] {
  const n = j.repetitions as number;
  const serial = j.serialVsBare as Spread;
  const concurrent = j.concurrentVsBare as Spread;
  const rows = [
    [`webhook intake ÷ bare node:http yardstick, serial (one request at a time; median of ${n})`, `≥ ${INTAKE_GOAL}`, s(serial, 3), ok(serial.median >= INTAKE_GOAL)],
    [`webhook intake ÷ bare node:http yardstick, ${j.connections as number} connections (median of ${n})`, `≥ ${INTAKE_GOAL}`, s(concurrent, 3), ok(concurrent.median >= INTAKE_GOAL)],
  ];
  if (j.serialVsDurable !== undefined) {
    rows.push(
      [`webhook intake ÷ durable yardstick (the same two writes, plainly), serial (median of ${n})`, '—', s(j.serialVsDurable as Spread, 3), ''],
      [`webhook intake ÷ durable yardstick, ${j.connections as number} connections (median of ${n})`, '—', s(j.concurrentVsDurable as Spread, 3), ''],
    );
  }
  return rows;
}

/** Section 6 of BENCHMARKS.md. */
export function intakeSection(j: Json, table: (head: string[], body: string[][]) => string): string {
  const side = (who: 'signet' | 'bare' | 'durable') => j[who] as Record<string, Spread>;
  const d = j.durability as Record<string, number>;
  return `## 6. Webhook intake (\`scripts/bench-intake.ts\`)

Signet's ingest role in its own process (logs at info to /dev/null, as deployed) against a bare
node:http server in its own process that reads the same delivery, checks the same bearer token,
parses the JSON and answers 202 with the bytes Signet answered. Deliveries are distribution push
notifications (${j.requestBytes as number} bytes, one manifest pushed by tag, a different digest each): what a registry sends
on every push. Serial is one connection, one request at a time, as distribution sends; concurrent
is ${j.connections as number} closed-loop connections. The servers take turns, in a rotating order; median of
${j.repetitions as number} repetitions of ${j.seconds as number} s, spread in brackets; CPU is each server's process time per delivery
answered over the run (its warm-up included).

A second, durable yardstick answers the same way after the two writes Signet's 202 stands for,
plainly and one after the other per delivery: one BullMQ job added to Redis (the same job options)
and one row inserted and committed in Postgres (a table made LIKE \`webhook_deliveries\`: same
columns, indexes and constraints; the same statement shape), with no validation and no grouping.
Signet ÷ the bare yardstick includes the cost of durability (a Postgres commit waits for its WAL
flush); Signet ÷ the durable one is what Signet itself adds.

${table(
  ['', 'Signet', 'bare yardstick', 'durable yardstick', 'Signet ÷ bare', 'Signet ÷ durable'],
  [
    ['serial deliveries/s', s(side('signet').serialRps!), s(side('bare').serialRps!), s(side('durable').serialRps!), s(j.serialVsBare as Spread, 3), s(j.serialVsDurable as Spread, 3)],
    ['serial p50 / p99 ms (whole ms)', `${side('signet').serialP50Ms!.median} / ${side('signet').serialP99Ms!.median}`, `${side('bare').serialP50Ms!.median} / ${side('bare').serialP99Ms!.median}`, `${side('durable').serialP50Ms!.median} / ${side('durable').serialP99Ms!.median}`, '', ''],
    ['serial CPU µs per delivery (the server process)', s(side('signet').serialCpuUsPerDelivery!), s(side('bare').serialCpuUsPerDelivery!), s(side('durable').serialCpuUsPerDelivery!), '', ''],
    [`${j.connections as number} connections, deliveries/s`, s(side('signet').concurrentRps!), s(side('bare').concurrentRps!), s(side('durable').concurrentRps!), s(j.concurrentVsBare as Spread, 3), s(j.concurrentVsDurable as Spread, 3)],
    [`${j.connections as number} connections, p99 ms`, String(side('signet').concurrentP99Ms!.median), String(side('bare').concurrentP99Ms!.median), String(side('durable').concurrentP99Ms!.median), '', ''],
    [`${j.connections as number} connections, CPU µs per delivery`, s(side('signet').concurrentCpuUsPerDelivery!), s(side('bare').concurrentCpuUsPerDelivery!), s(side('durable').concurrentCpuUsPerDelivery!), '', ''],
  ],
)}

Nothing answered 202 went missing: Signet answered ${d.answered202} deliveries 202 and Postgres holds ${d.receiptsRecorded} receipts
(${d.rows} rows; a request the load generator gave up on at the end of a run may be recorded unanswered),
and ${d.recordedJobsMissingFromQueue} of the jobs those rows name are missing from the queue (${d.jobsQueued} queued).
`;
}
