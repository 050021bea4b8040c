// Fills a ledger with synthetic data at scale, for benchmarks: by default 1M signatures on 500k
// images across 100k repositories (5 registries), signed by 10k identities (keyless email and
// GitHub-workflow URIs, and keys), one to three owners per repository, tags and ownership changes;
// besides: one unsigned image per ten signed ones, an SLSA provenance attestation on every fourth
// image, a decision per image under a seed policy version (SEED_POLICY_VERSION, or the version of
// the policy file given as --policy, whose text is recorded so that an API running it loads
// them), and a distribution push delivery for every fifth image.
// Everything is generated inside Postgres (generate_series) as one bulk load, so 1M signatures
// take about a minute. The generation itself is scripts/lib/seed-ledger.ts (what the re-decision
// and scale benchmarks and tests seed).
//
//   node scripts/seed-ledger.ts [--database postgres://…/signet_bench] [--signatures 1000000]
//        [--repositories 100000] [--identities 10000] [--policy policy.yaml] [--force]
//
// The database is created and migrated if needed; a ledger already seeded with the same sizes (and
// policy) is left as it is (unless --force). Prints a JSON summary on stdout.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';
import { parsePolicy } from '../services/common/policy/policy.ts';
import { ledgerCounts, SEED_POLICY_VERSION, seedLedger } from './lib/seed-ledger.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: process.env.SEED_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/signet_bench' },
    signatures: { type: 'string', default: '1000000' },
    repositories: { type: 'string', default: '100000' },
    identities: { type: 'string', default: '10000' },
    policy: { type: 'string' },
    force: { type: 'boolean', default: false },
  },
});

const S = Number(values.signatures);
const R = Number(values.repositories);
const I = Number(values.identities);
for (const [name, n] of Object.entries({ signatures: S, repositories: R, identities: I })) {
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name} must be a positive integer`);
  }
}

/** The policy the seeded decisions are recorded under: --policy's, else the made-up seed version. */
const seedPolicy =
  values.policy === undefined
    ? { version: SEED_POLICY_VERSION, source: '# seeded' }
    : await readFile(values.policy, 'utf8').then((text) => ({ version: parsePolicy(text, values.policy).version, source: text }));

const log = createLogger({ logLevel: 'warn' });
await ensureDatabase(values.database);
const db = createDb(values.database, log, { statementTimeoutMs: 30 * 60_000, max: 2 });
const started = performance.now();
try {
  await migrateToLatest(db);
  const existing = await sql<{ n: string }>`SELECT count(*) AS n FROM signatures WHERE kind = 'signature'`.execute(db);
  const have = Number(existing.rows[0]?.n ?? 0);
  const decided = await sql<{ n: string }>`SELECT count(*) AS n FROM policies WHERE version = ${seedPolicy.version}`.execute(db);
  if (have === S && Number(decided.rows[0]?.n) === 1 && !values.force) {
    console.log(JSON.stringify({ database: values.database, signatures: S, seeded: false, reason: 'already seeded' }));
  } else {
    await seedLedger(
      db,
      { signatures: S, repositories: R, identities: I },
      (what, ms, cpuMs) => process.stderr.write(`[seed] ${what}: ${ms} ms${cpuMs === null ? '' : ` (Postgres CPU ${cpuMs} ms)`}\n`),
      seedPolicy,
    );
    await sql`ANALYZE`.execute(db);
    console.log(
      JSON.stringify({
        database: values.database,
        seeded: true,
        policyVersion: seedPolicy.version,
        ...(await ledgerCounts(db)),
        seconds: Math.round((performance.now() - started) / 100) / 10,
      }),
    );
  }
} finally {
  await db.destroy();
}
