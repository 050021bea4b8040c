// A decision-table miss reads the one image's decision through the primary key, also under a policy
// version the statistics have not seen yet (a replica just switched to it, before autovacuum's
// ANALYZE). Compared as a plain column, the planner took such a version for a rare one and walked
// its `policy_version` index, filtering by image: every decision of the version up to the image
// was read (p50 7 ms, p99 50 ms at 220k decisions on `npm run bench:table`).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedLedger } from '../../scripts/lib/seed-ledger.ts';
import { createDb, type Db } from '../../services/common/db/client.ts';
import * as decisions from '../../services/common/db/queries/decisions.ts';
import type { Digest } from '../../services/common/domain/digest.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';

const NEW_VERSION = `sha256:${'ab'.repeat(32)}`;
let test: TestDb;
/** One connection, statements unprepared: each is planned for its own values, as a first use is. */
let planned: Db;

beforeAll(async () => {
  test = await createTestDb();
  await seedLedger(test.db, { signatures: 20_000, repositories: 500, identities: 50 });
  // The version the worker just decided: all of its rows written after the last ANALYZE.
  await sql`ALTER TABLE decisions SET (autovacuum_enabled = false)`.execute(test.db);
  await sql`ANALYZE decisions`.execute(test.db);
  await sql`INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, signers, verified_at, decided_at)
    SELECT manifest_id, ${NEW_VERSION}, allowed, reason, message, signers, verified_at, decided_at FROM decisions`.execute(test.db);
  planned = createDb(test.url, createLogger({ logLevel: 'silent' }), { max: 1, prepare: false });
});

afterAll(async () => {
  await planned?.destroy();
  await test?.drop();
});

/**
 * Index entries the current transaction read through the decisions table's `policy_version` index.
 * The transaction's own counter: the database-wide one also takes, up to seconds late, what other
 * connections read (the seed's, flushed when their backends get to it).
 */
async function policyIndexReadsHere(trx: Db): Promise<number> {
  const { rows } = await sql<{ n: string }>`SELECT pg_stat_get_xact_tuples_returned('decisions_policy_idx'::regclass) AS n`.execute(trx);
  return Number(rows[0]!.n);
}

describe('a decision miss', () => {
  it('reads one image through the primary key under a version the statistics have not seen', async () => {
    const { rows } = await sql<{ host: string; name: string; digest: Digest }>`
      SELECT g.host, r.name, m.digest FROM decisions d JOIN manifests m ON m.id = d.manifest_id
      JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
      WHERE d.policy_version = ${NEW_VERSION} ORDER BY d.manifest_id DESC LIMIT 1`.execute(test.db);
    const last = rows[0]!;
    await planned.transaction().execute(async (trx) => {
      const found = await decisions.find(trx, NEW_VERSION, last.host, last.name, last.digest);
      expect(found).toMatchObject({ registry: last.host, repository: last.name, digest: last.digest, policyVersion: NEW_VERSION });
      expect(await policyIndexReadsHere(trx)).toBe(0);
    });
  });
});
