// Times the worker's re-decision pass (core/decider.ts, Decider.redecide) on the synthetic ledger
// of scripts/seed-ledger.ts: after a policy edit that touches every image (each registry's rule
// changed), after one that touches 1% of them (a more specific rule for 20 of the 2,000
// organisations changed), and at a restart under an unchanged policy. Each pass is timed until API
// replicas can switch (the version complete; untouched decisions still read through its base) and
// to its end (carried over). Each is repeated `--reps`
// times (a new policy version each time); medians with min–max are printed as a Markdown table,
// every run as a JSON line on stderr. After each pass, what an API replica does to switch to the
// version is timed apart: loading its decisions (LedgerFeed.load into a fresh table).
//
//   node scripts/bench-redecide.ts [--database postgres://…/signet_redecide_bench]
//        [--signatures 900000] [--repositories 100000] [--identities 10000] [--reps 3] [--reseed]
//        [--keep-versions]
//
// The database is created, migrated and seeded if it does not hold that ledger yet (--reseed
// forces it); its decisions and policies are emptied before the first pass, which decides the
// whole ledger under the starting policy (also timed: nothing was decided in full before).
// Between passes (untimed) the decisions of every version but the one just decided are deleted
// and the table vacuumed: Signet does not prune old versions, and a table growing by a version
// per pass slows each pass down (the indexes outgrow the cache). --keep-versions keeps them.
// Decisions are published to a stream of this run's own in the local Redis (REDIS_URL), deleted at the end.
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { stringify } from 'yaml';
import { LedgerFeed } from '../services/api/decisions/feed.ts';
import { DecisionStore } from '../services/api/decisions/store.ts';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { ledgerStream } from '../services/common/events.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { createDecider, type RedecideResult } from '../services/core/decider.ts';
import { ledgerCounts, SEED_REGISTRIES, seedLedger } from './lib/seed-ledger.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_redecide_bench' },
    signatures: { type: 'string', default: '900000' },
    repositories: { type: 'string', default: '100000' },
    identities: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '3' },
    reseed: { type: 'boolean', default: false },
    'keep-versions': { type: 'boolean', default: false },
  },
});
const sizes = { signatures: Number(values.signatures), repositories: Number(values.repositories), identities: Number(values.identities) };
const REPS = Number(values.reps);

/**
 * The policy: each registry's `**` rule accepts the seed's GitHub workflows and developers
 * (`every` varies a never-matching alternative, so each value is a new rule with the same
 * outcomes), and a more specific rule for organisations 10–29 (1% of the repositories, so of the
 * images; `subset` varies it likewise).
 */
function policyText(every: number, subset: number): string {
  const rule = (variant: string) => ({
    'certificate-identity-regexp': `^(?:https://github\\.com/org[0-9]+/|dev[0-9]+@example\\.com$|never-${variant}$)`,
    'certificate-oidc-issuer-regexp': '^https://(?:token\\.actions\\.githubusercontent\\.com|accounts\\.google\\.com)$',
  });
  return stringify({
    allow_with_verification: Object.fromEntries(SEED_REGISTRIES.map((host) => [host, { '**': rule(`all-${every}`), 'org[1-2][0-9]/**': rule(`subset-${subset}`) }])),
  });
}

const log = createLogger({ logLevel: 'warn' });
await ensureDatabase(values.database);
const db = createDb(values.database, log, { statementTimeoutMs: 30 * 60_000, max: 4 });
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const stream = ledgerStream({ queuePrefix: `signet-bench-redecide-${process.pid}`, feedMaxLen: 10_000 });
try {
  await migrateToLatest(db);
  const have = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM signatures WHERE kind = 'signature'`.execute(db)).rows[0]?.n ?? 0);
  if (values.reseed || have !== sizes.signatures) {
    await seedLedger(db, sizes, (what, ms) => process.stderr.write(`[seed] ${what}: ${ms} ms\n`));
  }
  await sql`TRUNCATE decisions, policies`.execute(db);
  await sql`VACUUM ANALYZE`.execute(db);
  const counts = await ledgerCounts(db);
  process.stderr.write(`[bench] ledger: ${JSON.stringify(counts)}\n`);

  let text = policyText(0, 0);
  const decider = createDecider({ db, redis, stream, policy: parsePolicy(text), policySource: text, log });
  const runs: { what: string; result: RedecideResult; loadMs: number }[] = [];
  const pass = async (what: string, next: string | null, fresh = false) => {
    if (next !== null) {
      text = next;
      decider.setPolicy(parsePolicy(text), text);
    }
    const d = fresh ? createDecider({ db, redis, stream, policy: parsePolicy(text), policySource: text, log }) : decider;
    const result = await d.redecide();
    // What an API replica then does to switch: load the new version's decisions aside (untimed by the pass).
    const store = new DecisionStore();
    const loadStarted = performance.now();
    await new LedgerFeed(db, store, () => result.policyVersion, log).load(store, result.policyVersion);
    const loadMs = Math.round(performance.now() - loadStarted);
    runs.push({ what, result, loadMs });
    process.stderr.write(`${JSON.stringify({ what, ...result, loadMs, entries: store.size })}\n`);
    if (!values['keep-versions']) {
      // Untimed: only the version just decided stays, so that every pass meets a table of one
      // version (the next one's base), as a deployment that pruned old versions would.
      await sql`DELETE FROM decisions WHERE policy_version <> ${result.policyVersion}`.execute(db);
      await sql`DELETE FROM policies WHERE version <> ${result.policyVersion}`.execute(db);
      await sql`VACUUM ANALYZE decisions`.execute(db);
    }
  };
  await pass('first pass (nothing decided before)', null);
  for (let r = 1; r <= REPS; r++) {
    await pass('edit touching 1% of images', policyText(r - 1, r));
    await pass('edit touching every image', policyText(r, r));
    await pass('restart, policy unchanged', null, true);
  }

  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s.at(-1)! };
  };
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  const rows = [...new Set(runs.map((r) => r.what))].map((what) => {
    const these = runs.filter((r) => r.what === what);
    const of = these.map((r) => r.result);
    const t = stats(of.map((r) => r.ms));
    const l = stats(these.map((r) => r.loadMs));
    const n = (k: 'decided' | 'carried' | 'current') => stats(of.map((r) => r[k])).median.toLocaleString('en');
    const switched = of.every((r) => r.switchMs !== null) ? stats(of.map((r) => r.switchMs!)) : null;
    const switchCell = switched === null ? '—' : `${seconds(switched.median)} [${seconds(switched.min)}–${seconds(switched.max)}]`;
    return `| ${what} | ${of[0]!.kind} | ${of.length} | ${switchCell} | ${seconds(t.median)} [${seconds(t.min)}–${seconds(t.max)}] | ${n('decided')} | ${n('carried')} | ${n('current')} | ${seconds(l.median)} [${seconds(l.min)}–${seconds(l.max)}] |`;
  });
  console.log(
    [
      `${counts.images!.toLocaleString('en')} images, ${counts.signatures!.toLocaleString('en')} signatures, ${counts.attestations!.toLocaleString('en')} attestations; medians [min–max]:`,
      '',
      '| pass | kind | runs | until replicas switch, s | worker pass, s | decided | carried over | already decided | replica load, s |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
} finally {
  await redis.del(stream.key);
  redis.disconnect();
  await db.destroy();
}
