// Migrations run against ledgers that already hold data: each one that rewrites or derives rows is
// applied here to a database migrated only up to its predecessor and filled with rows.
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateOutcomes, aggregateSummary, aggregateTopSigners } from '../../scripts/lib/overview-aggregates.ts';
import { createDb, type Db } from '../../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest, MIGRATIONS_DIR } from '../../services/common/db/migrate.ts';
import * as registries from '../../services/common/db/queries/registries.ts';
import { createLogger } from '../../services/common/logger.ts';
import { PG_SERVER, TEST_DB_PREFIX } from '../helpers/db.ts';

const name = `${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}`;
let db: Db;
let partial: string;

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

beforeAll(async () => {
  await ensureDatabase(`${PG_SERVER}/${name}`);
  db = createDb(`${PG_SERVER}/${name}`, createLogger({ logLevel: 'silent' }));
  partial = await mkdtemp(join(tmpdir(), 'signet-migrations-'));
});

afterAll(async () => {
  await db?.destroy();
  const admin = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
  await rm(partial, { recursive: true, force: true });
});

describe('migrations on a populated ledger', () => {
  it('ownership: derives each repository’s signers, in the order they first signed, without alerting on history', async () => {
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
    const ownership = files.findIndex((f) => f.endsWith('_ownership.sql'));
    expect(ownership).toBeGreaterThan(0);
    for (const f of files.slice(0, ownership)) {
      await copyFile(join(MIGRATIONS_DIR, f), join(partial, f));
    }
    await migrateToLatest(db, partial);

    // Two repositories; a@x signs first in app, then b@x, then a@x again; only b@x signs in lib,
    // and a failed signature by c@x owns nothing.
    await sql`INSERT INTO registries (host) VALUES ('r.example')`.execute(db);
    await sql`INSERT INTO repositories (registry_id, name) VALUES (1, 'app'), (1, 'lib')`.execute(db);
    await sql`INSERT INTO manifests (repository_id, digest, media_type, size, status)
      VALUES (1, ${digest(1)}, 'm', 1, 'verified'), (1, ${digest(2)}, 'm', 1, 'verified'), (2, ${digest(3)}, 'm', 1, 'verified')`.execute(db);
    await sql`INSERT INTO identities (kind, subject, issuer) VALUES ('email', 'a@x', 'i'), ('email', 'b@x', 'i')`.execute(db);
    let n = 10;
    const sign = (manifest: number, identity: number | null, outcome = 'verified') =>
      sql`INSERT INTO signatures (manifest_id, material_digest, format, source_digest, layer_index, layer_digest, outcome, identity_id, subject, payload, annotations)
          VALUES (${manifest}, ${digest(n++)}, 'cosign_legacy', ${digest(99)}, 0, ${digest(98)}, ${outcome}, ${identity}, 'x', '\\x00', '{}')`.execute(db);
    await sign(1, 1);
    await sign(2, 2);
    await sign(2, 1);
    await sign(3, 2);
    await sign(3, null, 'identity_mismatch');

    await migrateToLatest(db);
    const { rows } = await sql<{ repository_id: string; identity_id: string; manifest_id: string; kind: string; previous_owner_ids: string[]; notified: boolean }>`
      SELECT repository_id, identity_id, manifest_id, kind, previous_owner_ids, notified_at IS NOT NULL AS notified
      FROM ownership_changes ORDER BY repository_id, id`.execute(db);
    expect(rows).toEqual([
      { repository_id: '1', identity_id: '1', manifest_id: '1', kind: 'initial', previous_owner_ids: [], notified: true },
      { repository_id: '1', identity_id: '2', manifest_id: '2', kind: 'added', previous_owner_ids: ['1'], notified: true },
      { repository_id: '2', identity_id: '2', manifest_id: '3', kind: 'initial', previous_owner_ids: [], notified: true },
    ]);
  });
});

describe('webhook delivery retention on recorded deliveries', () => {
  const own = `${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}`;
  let ownDb: Db;
  let before: string;

  beforeAll(async () => {
    await ensureDatabase(`${PG_SERVER}/${own}`);
    ownDb = createDb(`${PG_SERVER}/${own}`, createLogger({ logLevel: 'silent' }));
    before = await mkdtemp(join(tmpdir(), 'signet-migrations-'));
  });

  afterAll(async () => {
    await ownDb?.destroy();
    const admin = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(own)} WITH (FORCE)`);
    await admin.end();
    await rm(before, { recursive: true, force: true });
  });

  it('hashes every payload and folds the copies of a body onto its first row, counting them', async () => {
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
    const retention = files.findIndex((f) => f.endsWith('_webhook_delivery_retention.sql'));
    expect(retention).toBeGreaterThan(0);
    for (const f of files.slice(0, retention)) {
      await copyFile(join(MIGRATIONS_DIR, f), join(before, f));
    }
    await migrateToLatest(ownDb, before);

    // The same distribution body three times (a retry, a replay), once to another source, and a
    // second body.
    const deliver = (source: string, payload: string, at: string, addr: string) =>
      sql`INSERT INTO webhook_deliveries (source, received_at, remote_addr, status_code, result, payload)
          VALUES (${source}, ${at}::timestamptz, ${addr}, 202, ${`from ${addr}`}, ${payload})`.execute(ownDb);
    await deliver('distribution', '{"events":[1]}', '2026-01-01T00:00:00Z', 'a');
    await deliver('distribution', '{"events":[2]}', '2026-01-01T00:00:01Z', 'b');
    await deliver('distribution', '{"events":[1]}', '2026-01-02T00:00:00Z', 'c');
    await deliver('harbor', '{"events":[1]}', '2026-01-02T12:00:00Z', 'd');
    await deliver('distribution', '{"events":[1]}', '2026-01-03T00:00:00Z', 'e');

    await migrateToLatest(ownDb);
    const { rows } = await sql<{ source: string; remote_addr: string; result: string; payload_sha256: string; received_count: string; received_at: Date; last_received_at: Date }>`
      SELECT source, remote_addr, result, payload_sha256, received_count, received_at, last_received_at FROM webhook_deliveries ORDER BY id`.execute(ownDb);
    const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
    expect(rows).toEqual([
      { source: 'distribution', remote_addr: 'a', result: 'from a', payload_sha256: sha('{"events":[1]}'), received_count: '3', received_at: new Date('2026-01-01T00:00:00Z'), last_received_at: new Date('2026-01-03T00:00:00Z') },
      { source: 'distribution', remote_addr: 'b', result: 'from b', payload_sha256: sha('{"events":[2]}'), received_count: '1', received_at: new Date('2026-01-01T00:00:01Z'), last_received_at: new Date('2026-01-01T00:00:01Z') },
      { source: 'harbor', remote_addr: 'd', result: 'from d', payload_sha256: sha('{"events":[1]}'), received_count: '1', received_at: new Date('2026-01-02T12:00:00Z'), last_received_at: new Date('2026-01-02T12:00:00Z') },
    ]);
    await expect(sql`DELETE FROM webhook_deliveries`.execute(ownDb)).rejects.toThrow(/append-only/);
  });
});

describe('registry tallies on a populated ledger', () => {
  const own = `${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}`;
  let ownDb: Db;
  let before: string;

  beforeAll(async () => {
    await ensureDatabase(`${PG_SERVER}/${own}`);
    ownDb = createDb(`${PG_SERVER}/${own}`, createLogger({ logLevel: 'silent' }));
    before = await mkdtemp(join(tmpdir(), 'signet-migrations-'));
  });

  afterAll(async () => {
    await ownDb?.destroy();
    const admin = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(own)} WITH (FORCE)`);
    await admin.end();
    await rm(before, { recursive: true, force: true });
  });

  it('backfills every tally from the ledger as the aggregates count it, then keeps them', async () => {
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
    const tallies = files.findIndex((f) => f.endsWith('_registry_tallies.sql'));
    expect(tallies).toBeGreaterThan(0);
    for (const f of files.slice(0, tallies)) {
      await copyFile(join(MIGRATIONS_DIR, f), join(before, f));
    }
    await migrateToLatest(ownDb, before);

    // Two registries; images over three days, unsigned, verified and failed; a@x signs two images
    // of r1 (one twice), b@x one of r1 (withdrawn since) and one of r2; decisions under two versions.
    await sql`INSERT INTO registries (host) VALUES ('r1.example'), ('r2.example')`.execute(ownDb);
    await sql`INSERT INTO repositories (registry_id, name) VALUES (1, 'app'), (1, 'lib'), (2, 'app')`.execute(ownDb);
    await sql`INSERT INTO manifests (repository_id, digest, media_type, size, status, first_seen_at) VALUES
      (1, ${digest(1)}, 'm', 1, 'verified', now()), (1, ${digest(2)}, 'm', 1, 'verified', now() - interval '1 day'),
      (2, ${digest(3)}, 'm', 1, 'unsigned', now() - interval '2 days'), (2, ${digest(4)}, 'm', 1, 'identity_mismatch', now()),
      (3, ${digest(5)}, 'm', 1, 'verified', now() - interval '40 days')`.execute(ownDb);
    await sql`INSERT INTO identities (kind, subject, issuer) VALUES ('email', 'a@x', 'i'), ('email', 'b@x', 'i')`.execute(ownDb);
    let n = 10;
    const sign = (manifest: number, identity: number | null, withdrawn = false) =>
      sql`INSERT INTO signatures (manifest_id, material_digest, format, source_digest, layer_index, layer_digest, outcome, identity_id, subject, payload, annotations, withdrawn_at, withdrawn_by)
          VALUES (${manifest}, ${digest(n++)}, 'cosign_legacy', ${digest(99)}, 0, ${digest(98)}, ${identity === null ? 'identity_mismatch' : 'verified'}, ${identity}, 'x', '\\x00', '{}',
                  ${withdrawn ? new Date() : null}, ${withdrawn ? 'reindex' : null})`.execute(ownDb);
    await sign(1, 1);
    await sign(1, 1);
    await sign(2, 1);
    await sign(2, 2, true);
    await sign(4, null);
    await sign(5, 2);
    const decideAs = (version: string, allowed: (m: number) => boolean) =>
      sql`INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, verified_at)
          SELECT id, ${version}, id = ANY (${[1, 2, 3, 4, 5].filter(allowed)}::bigint[]), 'verified', '', now() FROM manifests`.execute(ownDb);
    await decideAs('v1', (m) => m === 1 || m === 5);
    await decideAs('v2', (m) => m !== 3);

    await migrateToLatest(ownDb);
    const check = async () => {
      for (const registry of ['1', '2']) {
        for (const version of ['v1', 'v2', 'v3']) {
          expect(await registries.summary(ownDb, registry, version)).toEqual(await aggregateSummary(ownDb, registry, version));
          expect(await registries.outcomes(ownDb, registry, version, 366)).toEqual(await aggregateOutcomes(ownDb, registry, version, 366));
        }
        expect(await registries.topSigners(ownDb, registry, 10)).toEqual(await aggregateTopSigners(ownDb, registry, 10));
      }
    };
    await check();
    expect(await registries.summary(ownDb, '1', 'v2')).toEqual({ repositories: 2, images: 4, signed: 3, verified: 2, allowed: 3, denied: 1 });
    expect(await registries.topSigners(ownDb, '1', 10)).toEqual([{ identityId: '1', images: 2 }]);
    // Kept from then on: b@x's signature found again, a third version decided.
    await sql`UPDATE signatures SET withdrawn_at = NULL, withdrawn_by = NULL WHERE identity_id = 2`.execute(ownDb);
    await decideAs('v3', () => true);
    await check();
    expect(await registries.topSigners(ownDb, '1', 10)).toEqual([{ identityId: '1', images: 2 }, { identityId: '2', images: 1 }]);
  });
});
