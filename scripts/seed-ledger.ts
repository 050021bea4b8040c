// Fills a ledger with synthetic data at scale, for benchmarks: by default 1M signatures on 500k
// images across 100k repositories (5 registries), signed by 10k identities (keyless email and
// GitHub-workflow URIs, and keys), one to three owners per repository, tags and ownership changes;
// besides: one unsigned image per ten signed ones, an SLSA provenance attestation on every fourth
// image, a decision per image under a seed policy version (SEED_POLICY_VERSION), and a
// distribution push delivery for every fifth image.
// Everything is generated inside Postgres (generate_series), so 1M signatures take about a minute.
// The generation itself is scripts/lib/seed-ledger.ts (what the re-decision benchmark and tests seed).
//
//   node scripts/seed-ledger.ts [--database postgres://…/signet_bench] [--signatures 1000000]
//        [--repositories 100000] [--identities 10000] [--force]
//
// The database is created and migrated if needed; a ledger already seeded with the same sizes is
// left as it is (unless --force). Prints a JSON summary on stdout.
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';
import { ledgerCounts, seedLedger } from './lib/seed-ledger.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: process.env.SEED_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/signet_bench' },
    signatures: { type: 'string', default: '1000000' },
    repositories: { type: 'string', default: '100000' },
    identities: { type: 'string', default: '10000' },
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

const log = createLogger({ logLevel: 'warn' });
await ensureDatabase(values.database);
const db = createDb(values.database, log, { statementTimeoutMs: 30 * 60_000, max: 2 });
const started = performance.now();
try {
  await migrateToLatest(db);
  const existing = await sql<{ n: string }>`SELECT count(*) AS n FROM signatures WHERE kind = 'signature'`.execute(db);
  const have = Number(existing.rows[0]?.n ?? 0);
  if (have === S && !values.force) {
    console.log(JSON.stringify({ database: values.database, signatures: S, seeded: false, reason: 'already seeded' }));
  } else {
    await seedLedger(db, { signatures: S, repositories: R, identities: I }, (what, ms) => process.stderr.write(`[seed] ${what}: ${ms} ms\n`));
    await sql`ANALYZE`.execute(db);
    console.log(
      JSON.stringify({
        database: values.database,
        seeded: true,
        ...(await ledgerCounts(db)),
        seconds: Math.round((performance.now() - started) / 100) / 10,
      }),
    );
  }
} finally {
  await db.destroy();
}
