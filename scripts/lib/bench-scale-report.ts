// BENCHMARKS.scale.md from bench-scale's JSON: the goals at this size, each part's table, and the
// per-push and per-request costs docs/scaling.md's capacity model is derived from.
import type { Load, Spread } from './bench.ts';
import type { IngestRun, PushCost } from './bench-scale-ingest.ts';

export interface LookupPass {
  readonly p50: number;
  readonly p99: number;
  readonly apiCpuMsPerLookup: number;
  readonly pgCpuMsPerLookup: number;
  readonly pgStatementsPerLookup: number;
  readonly pgRowsReadPerLookup: number;
  readonly pgBlocksPerLookup: number;
  readonly answers: Record<string, number>;
}

export interface ReplicaRun {
  readonly table: 'full' | 'bounded';
  readonly maxEntries: number;
  /** Null: not ready within the run's --ready-timeout (then stopped, no lookups). */
  readonly readyMs: number | null;
  readonly tableLoadMs: number | null;
  readonly decisionsLoaded: number | null;
  readonly tagsLoaded: number | null;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  readonly first: LookupPass | null;
  readonly second: LookupPass | null;
  readonly graphql?: Record<string, Load>;
}

export interface ReplicaSummary {
  readonly runs: number;
  /** Runs not ready within the timeout; the figures below are the other runs'. */
  readonly notReady: number;
  readonly readyTimeoutMs: number;
  readonly rssWhenGivenUpMiB: readonly number[];
  readonly maxEntries: number;
  readonly decisionsLoaded: number | null;
  readonly tagsLoaded: number | null;
  readonly readyMs: Spread;
  readonly tableLoadMs: Spread;
  readonly rssMiB: Spread;
  readonly peakRssMiB: Spread;
  readonly first: Record<Exclude<keyof LookupPass, 'answers'>, Spread> | null;
  readonly second: Record<Exclude<keyof LookupPass, 'answers'>, Spread> | null;
  readonly graphql: Record<string, { p50: Spread; p99: Spread; rps: Spread }> | null;
}

export interface RedecideRun {
  readonly name: string;
  /** The worker's pass: unchanged (a restart), incremental or full. */
  readonly kind: string | null;
  /** The worker said it was done within the budget. */
  readonly finished: boolean;
  /** How far the pass went (100 when finished). */
  readonly percent: number;
  /** From spawn to the pass's start (start-up and re-verification). */
  readonly startupMs: number | null;
  /** Measured when finished; else the time so far ÷ the fraction of the ledger gone over. */
  readonly passMs: number;
  /** From the pass's start until API replicas could switch to the version (null: a restart, or not within the budget). */
  readonly switchMs: number | null;
  readonly decided: number;
  readonly carried: number;
  readonly current: number;
  readonly workerCpuMsPerImage: number;
  readonly pgCpuMsPerImage: number;
  readonly pgRowsWrittenPerImage: number;
  readonly redisCommandsPerImage: number;
}

/** An API replica's decision feed across a Redis outage (bench-scale's outageRun). */
export interface OutageRun {
  readonly outageSeconds: number;
  /** Decision events published while it was cut off. */
  readonly published: number;
  /** Of them, applied once Redis was back (all of them, unless it reloaded). */
  readonly applied: number;
  /** Full reloads from Postgres (the goal: none). */
  readonly reloads: number;
  /** Resumptions from the last event applied. */
  readonly resumes: number;
  /** From Redis back to the last of them applied; null when they were not all applied within 2 min. */
  readonly caughtUpMs: number | null;
}

export interface ScaleResult {
  readonly date: string;
  readonly minutes: number;
  readonly command: string;
  readonly machine: { readonly cpu: string; readonly memoryGiB: number; readonly kernel: string; readonly node: string };
  readonly load: Record<string, Spread | null>;
  readonly ledger: Record<string, unknown> & { readonly signatures?: number; readonly images?: number; readonly decisions?: number; readonly tags?: number; readonly bytes?: number; readonly seedSeconds: number; readonly seed: Record<string, unknown> };
  readonly reps: number;
  readonly fullReps: number;
  readonly lookups: number;
  readonly graphqlRate: number;
  readonly graphqlSeconds: number;
  readonly redecideBudgetSeconds: number;
  readonly replicas: { readonly full: ReplicaSummary | null; readonly bounded: ReplicaSummary | null };
  /** Every replica run, in the order they ran. */
  readonly replicaRuns: readonly ReplicaRun[];
  /** The bounded replica cut off Redis (null: not run). */
  readonly outage: OutageRun | null;
  readonly redecisions: readonly RedecideRun[];
  readonly ingest: readonly IngestRun[];
}

const table = (head: string[], body: string[][]) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((x) => `| ${x.join(' | ')} |`)].join('\n');
const n = (x: number | undefined | null) => (typeof x === 'number' && Number.isFinite(x) ? x.toLocaleString('en-US') : '—');
/** A figure to a sensible precision. */
const f = (x: number) => (!Number.isFinite(x) ? '—' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(3));
/** A median with its spread, when there is one. */
const m = (s: Spread | undefined | null, scale = 1) => {
  // A figure not measured is NaN, which JSON carries as null.
  if (s === undefined || s === null || typeof s.median !== 'number' || !Number.isFinite(s.median)) {
    return '—';
  }
  const [a, b, c] = [s.median / scale, s.min / scale, s.max / scale];
  return s.values.length > 1 ? `${f(a)} [${f(b)}–${f(c)}]` : f(a);
};
const ok = (met: boolean) => (met ? 'met' : '**not met**');
/** The time to ready in s, and the runs given up on: how many, after how long, and their RSS then. */
const readyText = (s: ReplicaSummary) => {
  if (!(s.notReady > 0)) {
    return m(s.readyMs, 1000);
  }
  const given = `**not ready within ${f(s.readyTimeoutMs / 1000)} s** in ${s.notReady} of ${s.runs} (RSS then ${s.rssWhenGivenUpMiB.join(', ')} MiB)`;
  return s.notReady === s.runs ? given : `${m(s.readyMs, 1000)}; ${given}`;
};
const loadText = (s: Spread | null | undefined) => (s === null || s === undefined ? '—' : `${s.median} [${s.min}–${s.max}]`);

export function renderScaleReport(r: ScaleResult): string {
  const full = r.replicas.full;
  const bounded = r.replicas.bounded;
  const goals: string[][] = [];
  if (bounded !== null) {
    goals.push(
      [
        `API replica ready (spawn to /readyz) with the bounded table (${n(bounded.maxEntries)})`,
        '< 10 s',
        `${readyText(bounded)} s`,
        ok(!(bounded.notReady > 0) && bounded.readyMs.median < 10_000),
      ],
      ['API replica RSS with the bounded table, at ready (peak during the load)', '< 1 GiB', `${m(bounded.rssMiB)} MiB (peak ${m(bounded.peakRssMiB)})`, ok(bounded.peakRssMiB.median < 1024)],
      ['decision miss p99 (answered from Postgres, sequential)', '< 5 ms', `${m(bounded.first?.p99)} ms`, ok((bounded.first?.p99.median ?? Infinity) < 5)],
    );
  }
  const outage = r.outage;
  if (outage !== null) {
    goals.push([
      `no full reload after a ${f(outage.outageSeconds)}-second Redis outage (bounded replica; ${n(outage.published)} decisions published meanwhile)`,
      '0 reloads',
      `${n(outage.reloads)} reloads, ${n(outage.resumes)} resumption; ${n(outage.applied)} of the ${n(outage.published)} applied ${outage.caughtUpMs === null ? '(not all within 2 min)' : `${f(outage.caughtUpMs / 1000)} s after Redis was back`}`,
      ok(outage.reloads === 0 && outage.applied === outage.published),
    ]);
  }
  const [restart, onePercent, every] = ['restart', '1%', 'every image'].map((k) => r.redecisions.find((x) => x.name.includes(k)));
  if (restart !== undefined) {
    goals.push(['worker restart under an unchanged policy decides nothing', '0 decided', `${n(restart.decided)} decided (pass ${f(restart.passMs / 1000)} s)`, ok(restart.decided === 0)]);
  }
  if (onePercent !== undefined && every !== undefined && restart !== undefined) {
    // The constant: what a pass that decides nothing costs (the restart's). Each edit until API
    // replicas can switch to it (its untouched decisions are carried over after that).
    const until = (x: RedecideRun) => x.switchMs ?? x.passMs;
    const bound = 0.01 * until(every) + restart.passMs;
    goals.push([
      'policy edit touching 1%, until replicas switch: under 1% of an edit touching every image, plus a restart\'s pass (the constant)',
      '< 1% + constant',
      `${f(until(onePercent) / 1000)} s against ${f((0.01 * until(every)) / 1000)} s + ${f(restart.passMs / 1000)} s (without the constant: ${f((until(onePercent) / until(every)) * 100)}%)`,
      ok(until(onePercent) < bound),
    ]);
  }
  // The deployment the README describes: one worker process (the default SIGNET_WORKER_CONCURRENCY).
  const oneWorker = r.ingest.find((x) => x.workers === 1);
  if (oneWorker !== undefined) {
    goals.push([
      "ingest keeps up with the registry: Signet's rate indexing a backlog of signature pushes ÷ the registry's rate accepting them, the same images, each with the machine, one worker process (as the README deploys), the registry configured as the README says",
      '≥ 1',
      `${m(oneWorker.keepUp)} (${m(oneWorker.signetPerSecond)} images/s against ${m(oneWorker.registryPerSecond)} pushes/s)`,
      ok(oneWorker.keepUp.median >= 1),
    ]);
  }
  const replicaRows = ([['full', full], ['bounded', bounded]] as const)
    .filter((x): x is readonly ['full' | 'bounded', ReplicaSummary] => x[1] !== null)
    .map(([name, s]) => [
      `${name} (SIGNET_DECISION_TABLE_MAX=${n(s.maxEntries)})`,
      String(s.runs),
      `${n(s.decisionsLoaded)} / ${n(s.tagsLoaded)}`,
      readyText(s),
      m(s.tableLoadMs, 1000),
      m(s.rssMiB),
      m(s.peakRssMiB),
    ]);
  const lookupRows = ([['full', full], ['bounded', bounded]] as const)
    .filter((x): x is readonly ['full' | 'bounded', ReplicaSummary] => x[1] !== null)
    .flatMap(([name, s]) => [
      [
        `${name}: first lookup (${name === 'full' ? 'hits' : 'misses: Postgres'})`,
        `${m(s.first?.p50)} / ${m(s.first?.p99)}`,
        m(s.first?.apiCpuMsPerLookup),
        m(s.first?.pgCpuMsPerLookup),
        m(s.first?.pgStatementsPerLookup),
        m(s.first?.pgRowsReadPerLookup),
        m(s.first?.pgBlocksPerLookup),
      ],
      [`${name}: the same again (hits)`, `${m(s.second?.p50)} / ${m(s.second?.p99)}`, m(s.second?.apiCpuMsPerLookup), m(s.second?.pgCpuMsPerLookup), m(s.second?.pgStatementsPerLookup), '', ''],
    ]);
  const graphqlRows = bounded?.graphql === null || bounded?.graphql === undefined ? [] : Object.entries(bounded.graphql).map(([q, g]) => [q.startsWith('/') ? q : `\`${q}\``, m(g.p50), m(g.p99)]);
  const redecideRows = r.redecisions.map((x) => [
    x.name,
    x.kind ?? '—',
    x.startupMs === null ? '—' : f(x.startupMs / 1000),
    x.switchMs === null ? '—' : f(x.switchMs / 1000),
    `${f(x.passMs / 1000)}${x.finished ? '' : ` (extrapolated from ${f(x.percent)}%)`}`,
    n(x.decided),
    n(x.carried),
    n(x.current),
    f(x.workerCpuMsPerImage),
    f(x.pgCpuMsPerImage),
    f(x.pgRowsWrittenPerImage),
    f(x.redisCommandsPerImage),
  ]);
  const ingestRows = r.ingest.map((x) => [
    String(x.workers),
    m(x.registryPerSecond),
    m(x.signetPerSecond),
    m(x.keepUp),
    `${m(x.together.registryPerSecond)} / ${m(x.together.signetPerSecond)}`,
    m(x.together.drainMs),
    m(x.pushToDecisionP99),
    `${n(x.peakRssMiB.ingest)} / ${n(x.peakRssMiB.worker)}`,
  ]);
  const drain = r.ingest[0]?.drainCpu ?? null;
  const drainText =
    drain === null
      ? ''
      : `\nCPU per image while ${r.ingest[0]!.workers} worker process(es) index the backlog (ms; medians [spread]): Signet ${m(drain.signetCpuMs)}, Postgres ${m(drain.pgCpuMs)}, Redis ${m(drain.redisCpuMs)}, and the registry serving Signet's reads ${m(drain.registryCpuMs)}.\n`;
  const costKeys: [keyof PushCost, string][] = [
    ['signetCpuMs', "Signet's CPU ms (ingest+api and workers)"],
    ['pgCpuMs', 'Postgres CPU ms (its backends)'],
    ['pgStatements', 'Postgres statements'],
    ['pgRowsRead', 'Postgres rows read'],
    ['pgRowsWritten', 'Postgres rows written'],
    ['redisCommands', 'Redis commands'],
    ['redisBytes', 'Redis bytes in + out'],
    ['redisCpuMs', 'Redis CPU ms'],
  ];
  const one = r.ingest[0];
  const image = one?.perImagePush ?? null;
  const signature = one?.perSignaturePush ?? null;
  const costRows = image === null || signature === null ? [] : costKeys.map(([k, label]) => [label, m(image[k]), m(signature[k]), f(image[k].median + signature[k].median)]);
  const admissionRows = [
    ...(full === null ? [] : [['hit, full table', m(full.second?.apiCpuMsPerLookup), '0', '0', '0']]),
    ...(bounded === null
      ? []
      : [
          ['hit, bounded table', m(bounded.second?.apiCpuMsPerLookup), '0', '0', '0'],
          ['miss, bounded table (then kept)', m(bounded.first?.apiCpuMsPerLookup), m(bounded.first?.pgCpuMsPerLookup), m(bounded.first?.pgStatementsPerLookup), '0'],
        ]),
  ];
  const ledger = r.ledger;
  return `# Scale benchmarks

Generated by \`npm run bench:scale\` (\`${r.command}\`) on ${r.date} in ${r.minutes} min.
A separate file from BENCHMARKS.md: \`npm run bench\` rewrites that one whole in minutes, while this
run takes up to half an hour and seeds a ledger of its own, so the two are regenerated apart.
Every Signet part runs as its own process (\`services/main.ts\`, as deployed); Redis is a server of
this run's own. Figures are medians of the repetitions with [min–max]; one figure is one run.

## Machine and load

${r.machine.cpu}, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}, Node ${r.machine.node}. The machine is shared: its 1-minute load
average (median [min–max]) was ${loadText(r.load.all)} over the whole run — seed ${r.ledger.seed.seeded === false ? '(reused)' : loadText(r.load.seed)}, API replicas
${loadText(r.load['api replicas'])}, re-decision ${loadText(r.load['re-decision'])}, ingest ${loadText(r.load.ingest)}. With 2 cores, a load
above 2 means every process here waited for a CPU: wall times are longer than on an idle machine,
CPU times per operation much less so.

## Ledger

${n(ledger.signatures)} signatures on ${n(ledger.images)} images (${n(ledger.decisions)} decisions under the benchmark's policy, ${n(ledger.tags)}
tags), ${n(ledger.repositories as number)} repositories, ${n(ledger.identities as number)} identities; ${n(Math.round((ledger.bytes ?? 0) / 2 ** 30))} GiB in Postgres.
${ledger.seed.seeded === false ? `Reused, seeded by an earlier run (${ledger.seedSeconds} s to check).` : `Seeded by \`scripts/seed-ledger.ts\` in ${ledger.seedSeconds} s.`}

## Goals at this size

${table(['what', 'goal', 'measured', ''], goals)}

## 1. API replicas: warm start and memory

An API-only process (\`SIGNET_ROLES=api\`) per run: from spawn to \`/readyz\` answering 200 (it listens
once its decision table is loaded), its resident memory then, and its peak (VmHWM). Full table
repetitions: ${r.fullReps}; bounded: ${r.reps}.

${table(['table', 'runs', 'decisions / tags loaded', 'ready s', 'table load s (its log)', 'RSS at ready MiB', 'peak RSS MiB'], replicaRows)}

## 2. Decision lookups, hits and misses

${n(r.lookups)} sequential \`GET /v1/decisions?image=<digest reference>\` on one keep-alive connection, for the
images decided longest ago (a bounded table loads the most recent, so these are its misses, answered
from Postgres and then kept), then the same ones again (hits). Latency is the client's, on
loopback. CPU per lookup is the replica's and its Postgres backends' CPU time over the pass ÷ lookups;
Postgres's statement, row and buffer counters are read for the misses only (they need 11 s to settle).

${table(['pass', 'p50 / p99 ms', 'API CPU ms', 'Postgres CPU ms', 'Postgres statements', 'rows read', 'buffer pages'], lookupRows)}
${
  r.outage === null
    ? ''
    : `
A Redis outage: one more bounded replica reaches Redis through a TCP proxy, which drops its
connections and refuses new ones for ${f(r.outage.outageSeconds)} s, while the stored decisions of the same ${n(r.outage.published)} images
are published to its feed a second's share at a time, as a worker goes on publishing. Once Redis is
back it resumed ${n(r.outage.resumes)} time(s) from its last event and reloaded ${n(r.outage.reloads)} time(s); ${n(r.outage.applied)} of the ${n(r.outage.published)} events were applied${r.outage.caughtUpMs === null ? ' (not all within 2 min)' : `, the last ${f(r.outage.caughtUpMs / 1000)} s after Redis was back (ioredis reconnects with a back-off)`}.
`
}
## 3. GraphQL

bench-graphql's queries (\`scripts/lib/graphql-queries.ts\`: 2,000 sampled images or identities), at
${r.graphqlRate} requests/s for ${r.graphqlSeconds} s each, open loop (\`scripts/bench-load.ts\`), against the bounded replica; \`/healthz\`
of the same replica at the same rate is the yardstick.

${table(['query', 'p50 ms', 'p99 ms'], graphqlRows)}

## 4. Re-decision

The worker's pass (\`Decider.redecide\`) on the seeded ledger, which is recorded as decided in full under
the benchmark's policy by this Signet version: a worker started under that policy (a restart), and
under two edits of it. An incremental pass first decides the images of the repositories the edit
touched (read through their index) and marks the version complete: API replicas switch to it then
("switch s"), reading an untouched image's decision through the previous version. Then it goes over
every image id range, carrying those decisions over (copied to the new version in one statement
per range) and deciding any that no longer count. Timed from the pass's start (the worker's log) until it logs
\`ledger re-decided\`, or for ${r.redecideBudgetSeconds} s and extrapolated from its last progress line (time so far ÷
fraction of the id range gone over). Costs are per image gone over (decided, carried or current).

${table(['scenario', 'pass', 'start-up s', 'switch s', 'pass s', 'decided', 'carried over', 'already current', 'worker CPU ms/image', 'Postgres CPU ms/image', 'rows written/image', 'Redis commands/image'], redecideRows)}

## 5. Ingest against the registry

A fresh ledger; an ingest+api process and 1, 2 or 4 worker processes (the default \`SIGNET_WORKER_CONCURRENCY\`,
16 each); a local docker-registry notifying ingest of manifest pushes and deletes (the README's \`ignore\` of
blob events and pulls). Each repetition pushes and signs 2 × ${one === undefined ? '—' : n(one.images)} images (untimed; Signet indexes
them unsigned) and then pushes their signatures, ${one === undefined ? '—' : one.concurrency} pushers as fast as the registry acknowledges them, twice:

- **Capacity** (the goal): Signet's index queue paused, the registry's rate for the first ${one === undefined ? '—' : n(one.images)} signature
  pushes (Signet's ingest records and queues each delivery meanwhile); then the queue resumed, Signet's
  rate indexing that backlog, from the resumption to the last image allowed. Each rate is had with the
  machine to itself, but for its counterpart's part of the same work (the intake; the registry serving
  Signet's reads). Signet ÷ registry ≥ 1: on the same hardware Signet indexes pushes at least as fast
  as the registry accepts them, so a backlog does not grow.
- **Together**: the other ${one === undefined ? '—' : n(one.images)} pushed while Signet indexes them, the pushing client (signing, the OCI
  pushes), the registry and Signet sharing the 2 cores. Push-to-decision is from the registry's 201
  for the signature push to the decision's \`decided_at\`; "after the last push" is from the last 201 to
  the last image allowed. Signet's rate here (first push to last image allowed) stays under the
  registry's whatever Signet's speed: its window holds the registry's and then the last image's own
  indexing.

${table(['worker processes', 'registry pushes/s', 'Signet images/s', 'Signet ÷ registry', 'together: registry / Signet per s', 'together: after the last push ms', 'push-to-decision p99 ms', 'peak RSS MiB: ingest+api / worker'], ingestRows)}
${drainText}
## Costs per push and per admission request

The per-operation figures docs/scaling.md's capacity model uses. Per push, from the ingest run with
${one === undefined ? '—' : one.workers} worker process(es) (section 5): an image push (indexed, decided unsigned) and its signature
push (fetched, verified, recorded, decided allowed, published). Per admission request, from
section 2. Postgres statements exclude the benchmark's own polling.

${table(['per image', 'image push', 'signature push', 'signed image in all'], costRows)}

${table(['per admission lookup (one image)', 'API CPU ms', 'Postgres CPU ms', 'Postgres statements', 'Redis'], admissionRows)}

## Reproduce

\`\`\`sh
npm run bench:scale                                           # 10M signatures, all parts
node scripts/bench-scale.ts --signatures 200000 --dry-run     # a small ledger, prints JSON only
node scripts/bench-scale.ts --only ingest --workers 1 --dry-run
\`\`\`
`;
}
