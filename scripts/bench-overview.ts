// The registry overview on a seeded ledger (scripts/seed-ledger.ts: 1M signatures by default):
// `Registry.summary`, `topSigners(first: 10)` and `outcomes(days: 30)` read from the registry
// tallies, against the whole-registry aggregates they replaced (scripts/lib/overview-aggregates.ts),
// for the registry of image 400000 (as scripts/explain-graphql.ts) under the seed's policy version.
// Each is run once to warm up, then --reps times: median and min–max in ms; the two answers must
// be equal. With --plans, each statement's EXPLAIN (ANALYZE, BUFFERS) too.
//
// With --writes N, what keeping the tallies costs the ledger's writes: N images indexed one at a
// time in a scratch registry (a manifest with two verified signatures by two of 50 identities, as
// images.recordIndexed writes it, then its decision), and N decisions changed in batches of 500,
// alternately with the tally triggers enabled and disabled (ALTER TABLE … DISABLE TRIGGER), in
// blocks, on one connection: wall ms and the CPU ms of its Postgres backend (/proc/<pid>/stat, so
// Postgres must run on this machine; far steadier than wall time on a shared machine) per image
// and per batch, medians over blocks. The tallies are rebuilt afterwards (the disabled blocks did
// not count). Needs a ledger migrated with the tallies.
//
//   node scripts/bench-overview.ts [--database postgres://…/signet_bench] [--reps 7] [--plans] [--writes 400]
//
// Prints JSON (and the plans, before it). A measurement, not a test.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { type CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import * as decisions from '../services/common/db/queries/decisions.ts';
import * as images from '../services/common/db/queries/images.ts';
import * as registries from '../services/common/db/queries/registries.ts';
import type { DB } from '../services/common/db/schema.generated.ts';
import { sha256Digest } from '../services/common/domain/digest.ts';
import { signatureRecord } from '../test/helpers/ledger.ts';
import { aggregateOutcomes, aggregateSummary, aggregateTopSigners } from './lib/overview-aggregates.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_bench' },
    reps: { type: 'string', default: '7' },
    plans: { type: 'boolean', default: false },
    writes: { type: 'string', default: '0' },
  },
});
const reps = Number(values.reps);
const pool = new pg.Pool({ connectionString: values.database, max: 4 });
let logged: CompiledQuery[] = [];
const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: (e) => void logged.push(e.query) });

const one = async (q: string) => (await pool.query<Record<string, string>>(q)).rows[0] ?? {};
const { gid = '', pv = '' } = await one(
  `SELECT r.registry_id AS gid, (SELECT policy_version FROM decisions LIMIT 1) AS pv FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE m.id = 400000`,
);
const hasTallies = ((await one(`SELECT to_regclass('registry_tallies')::text AS t`)).t ?? null) !== null;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 100) / 100;
const spread = (xs: number[]) => ({ median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) });

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number[]; answer: T; statements: CompiledQuery[] }> {
  logged = [];
  const answer = await run();
  const statements = [...logged];
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await run();
    ms.push(performance.now() - t);
  }
  return { ms, answer, statements };
}

async function plan(statements: CompiledQuery[]): Promise<string> {
  const out: string[] = [];
  for (const q of statements) {
    const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${q.sql}`, q.parameters as unknown[]);
    out.push(rows.map((r) => r['QUERY PLAN']).join('\n'));
  }
  return out.join('\n\n');
}

const cases = {
  'Registry.summary': [() => aggregateSummary(db, gid, pv), () => registries.summary(db, gid, pv)],
  'Registry.topSigners(first: 10)': [() => aggregateTopSigners(db, gid, 10), () => registries.topSigners(db, gid, 10)],
  'Registry.outcomes(days: 30)': [() => aggregateOutcomes(db, gid, pv, 30), () => registries.outcomes(db, gid, pv, 30)],
} as const;

const reads: Record<string, unknown> = {};
for (const [name, [aggregate, tallied]] of Object.entries(cases)) {
  const before = await timed<unknown>(aggregate);
  const after = hasTallies ? await timed<unknown>(tallied) : null;
  if (values.plans) {
    console.log(`### ${name}: aggregate (before)\n${await plan(before.statements)}\n`);
    if (after !== null) {
      console.log(`### ${name}: tallies (after)\n${await plan(after.statements)}\n`);
    }
  }
  reads[name] = {
    aggregateMs: spread(before.ms),
    ...(after === null ? {} : { talliesMs: spread(after.ms), speedup: Math.round(median(before.ms) / median(after.ms)), equal: isDeepStrictEqual(before.answer, after.answer) }),
  };
}

let writes: Record<string, unknown> | null = null;
const N = Number(values.writes);
if (N > 0 && hasTallies) {
  const TRIGGERS: Record<string, string[]> = {
    repositories: ['repositories_tally_insert', 'repositories_tally_delete'],
    manifests: ['manifests_tally_insert', 'manifests_tally_update', 'manifests_tally_delete'],
    signatures: ['signatures_tally_insert', 'signatures_tally_update', 'signatures_tally_delete'],
    decisions: ['decisions_tally_insert', 'decisions_tally_update', 'decisions_tally_delete'],
  };
  const setTriggers = async (on: boolean) => {
    for (const [table, names] of Object.entries(TRIGGERS)) {
      await pool.query(`ALTER TABLE ${table} ${names.map((n) => `${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${n}`).join(', ')}`);
    }
  };
  // One connection, so that its backend's CPU time is what the writes cost Postgres.
  const wpool = new pg.Pool({ connectionString: values.database, max: 1 });
  const wdb = new Kysely<DB>({ dialect: new PostgresDialect({ pool: wpool }) });
  const backend = (await wpool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  /** CPU ms the backend used so far (utime + stime, in clock ticks of 10 ms). */
  const cpuMs = () => {
    const fields = readFileSync(`/proc/${backend}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  const HOST = `bench-writes-${process.pid}.example`;
  const signer = (i: number) => ({ kind: 'email' as const, subject: `writer${i % 50}@example.com`, issuer: 'https://accounts.example.com' });
  let next = 0;
  /** One index job's ledger writes: the image with two signatures, then its decision. */
  async function indexOne(): Promise<void> {
    const i = next++;
    const digest = sha256Digest(`bench write ${process.pid} ${i}`);
    const sigs = [signatureRecord({ material: `${process.pid} ${i} a`, signer: signer(i) }), signatureRecord({ material: `${process.pid} ${i} b`, signer: signer(i + 7) })];
    const recorded = await images.recordIndexed(wdb, HOST, `w/r${i % 20}`, [{ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, parent: null, signatures: sigs, discoveryError: null }]);
    const [input] = await decisions.loadInputs(wdb, recorded.manifests.map((m) => m.id));
    await decisions.upsert(wdb, [{ input: input!, decision: { allowed: true, reason: 'verified', message: 'bench', signers: [], rule: null, mode: 'enforce', policyVersion: pv } }]);
  }
  /** Flips the decision of 500 seeded images (allowed ↔ denied), in one statement; every other call flips them back. */
  let batch = 0;
  async function flipBatch(): Promise<void> {
    const from = 1 + (Math.floor(batch++ / 2) % 1000) * 500;
    await wpool.query(`UPDATE decisions SET allowed = NOT allowed WHERE policy_version = $1 AND manifest_id BETWEEN $2 AND $3`, [pv, from, from + 499]);
  }
  const BLOCK = Math.max(10, Math.floor(N / 8));
  const perImage: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const perBatch: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const cpuPerImage: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const cpuPerBatch: Record<'on' | 'off', number[]> = { on: [], off: [] };
  try {
    await indexOne(); // the registry, repositories and identities exist from here on
    for (let done = 0; done < N; done += BLOCK) {
      for (const mode of ['on', 'off'] as const) {
        await setTriggers(mode === 'on');
        let t = performance.now();
        let cpu = cpuMs();
        for (let k = 0; k < BLOCK; k++) {
          await indexOne();
        }
        perImage[mode].push((performance.now() - t) / BLOCK);
        cpuPerImage[mode].push((cpuMs() - cpu) / BLOCK);
        t = performance.now();
        cpu = cpuMs();
        for (let k = 0; k < 20; k++) {
          await flipBatch();
        }
        perBatch[mode].push((performance.now() - t) / 20);
        cpuPerBatch[mode].push((cpuMs() - cpu) / 20);
      }
    }
  } finally {
    await setTriggers(true);
    // The scratch registry goes, so that the seed stays as seeded (seed-ledger.ts reuses it by its count).
    const scratch = `(SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id WHERE g.host = '${HOST}')`;
    const repos = `(SELECT r.id FROM repositories r JOIN registries g ON g.id = r.registry_id WHERE g.host = '${HOST}')`;
    await pool.query(`DELETE FROM decisions WHERE manifest_id IN ${scratch}`);
    await pool.query(`DELETE FROM signatures WHERE manifest_id IN ${scratch}`);
    await pool.query(`DELETE FROM ownership_changes WHERE repository_id IN ${repos}`);
    await pool.query(`DELETE FROM manifests WHERE id IN ${scratch}`);
    await pool.query(`DELETE FROM tags WHERE repository_id IN ${repos}`);
    await pool.query(`DELETE FROM repositories WHERE id IN ${repos}`);
    await pool.query(`DELETE FROM registries WHERE host = '${HOST}'`);
    process.stderr.write('[bench-overview] rebuilding the tallies (the disabled blocks did not count)\n');
    await pool.query('SELECT signet_rebuild_registry_tallies()');
  }
  writes = {
    images: next,
    indexJobMs: { tallies: spread(perImage.on), without: spread(perImage.off), overheadMs: round(median(perImage.on) - median(perImage.off)) },
    indexJobBackendCpuMs: { tallies: spread(cpuPerImage.on), without: spread(cpuPerImage.off), overheadMs: round(median(cpuPerImage.on) - median(cpuPerImage.off)) },
    decisionBatchOf500Ms: { tallies: spread(perBatch.on), without: spread(perBatch.off), overheadMs: round(median(perBatch.on) - median(perBatch.off)) },
    decisionBatchOf500BackendCpuMs: { tallies: spread(cpuPerBatch.on), without: spread(cpuPerBatch.off), overheadMs: round(median(cpuPerBatch.on) - median(cpuPerBatch.off)) },
  };
  await wdb.destroy();
}

console.log(JSON.stringify({ database: values.database, registryId: gid, policyVersion: pv, reps, reads, ...(writes === null ? {} : { writes }) }, null, 2));
await db.destroy();
