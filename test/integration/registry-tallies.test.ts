// The registry overview (`Registry.summary`, `topSigners`, `outcomes`) reads counters the ledger's
// writes keep (migrations/…_registry_tallies.sql). Here they are checked against the aggregates
// over the ledger they replace (scripts/lib/overview-aggregates.ts), computed afresh, after every
// kind of write: images indexed in several registries (signed, unsigned, failed, attested, an
// index and its children, some first seen days ago), decisions under a policy, a re-index that
// withdraws signatures and one that finds them again, a re-verification that changes a verdict, a
// policy change, deletes, concurrent writers, and TRUNCATE. Every tally is also compared with a
// rebuild from scratch (`signet_rebuild_registry_tallies()`, the migration's backfill).
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateOutcomes, aggregateSummary, aggregateTopSigners } from '../../scripts/lib/overview-aggregates.ts';
import * as decisions from '../../services/common/db/queries/decisions.ts';
import * as images from '../../services/common/db/queries/images.ts';
import * as registries from '../../services/common/db/queries/registries.ts';
import type { DB } from '../../services/common/db/schema.generated.ts';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import type { SignatureRecord, SignatureSources, SignerIdentity } from '../../services/common/domain/signature.ts';
import { decide } from '../../services/common/policy/evaluate.ts';
import { parsePolicy, type Policy } from '../../services/common/policy/policy.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { signatureRecord } from '../helpers/ledger.ts';

const ISSUER = 'https://accounts.example.com';
const who = (name: string): SignerIdentity => ({ kind: 'email', subject: `${name}@example.com`, issuer: ISSUER });
const ALICE = who('alice');
const BOB = who('bob');
const CAROL = who('carol');
const DAVE = who('dave');
const SLSA = 'https://slsa.dev/provenance/v1';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

const rule = (host: string, signer: SignerIdentity) => `  "${host}":\n    "*/*":\n      certificate-identity: ${signer.subject}\n      certificate-oidc-issuer: ${ISSUER}\n`;
// Policy A allows alice's images in ghcr.test and bob's in quay.test; B allows bob's in ghcr.test
// and carol's in quay.test. registry.test is covered by neither (denied).
const POLICY_A = parsePolicy(`allow_with_verification:\n${rule('ghcr.test', ALICE)}${rule('quay.test', BOB)}`);
const POLICY_B = parsePolicy(`allow_with_verification:\n${rule('ghcr.test', BOB)}${rule('quay.test', CAROL)}`);
const NEVER = 'sha256:' + '0'.repeat(64);

let db: TestDb;

beforeAll(async () => {
  db = await createTestDb();
});

afterAll(async () => {
  await db?.drop();
});

const digest = (name: string): Digest => sha256Digest(`image ${name}`);

function manifest(name: string, signatures: SignatureRecord[], opts: { sources?: SignatureSources; parent?: string; mediaType?: string } = {}): images.IndexedManifest {
  return {
    digest: digest(name),
    mediaType: opts.mediaType ?? MANIFEST,
    size: 1,
    parent: opts.parent === undefined ? null : { digest: digest(opts.parent), position: 0, platform: null },
    signatures,
    discoveryError: null,
    ...(opts.sources === undefined ? {} : { sources: opts.sources }),
  };
}

/** Everything discovery read for `signatures`: what it no longer lists is withdrawn. */
function complete(signatures: SignatureRecord[]): SignatureSources {
  return { listed: signatures.map((s) => s.sourceDigest), pushed: [], complete: true };
}

function index(host: string, repository: string, ...manifests: images.IndexedManifest[]) {
  return images.recordIndexed(db.db, host, repository, manifests);
}

/** Decides every image (or those given) under `policy` and stores the decisions, as the worker does. */
async function decideAll(policy: Policy, ids?: string[]): Promise<void> {
  const all = ids ?? (await db.db.selectFrom('manifests').select('id').execute()).map((r) => r.id);
  const inputs = await decisions.loadInputs(db.db, all);
  await decisions.upsert(
    db.db,
    inputs.map((input) => ({ input, decision: decide(policy, input.registry, input.repository, input.facts) })),
  );
}

/** An image first seen `days` ago, written as an import would (then indexed as usual). */
async function seenDaysAgo(host: string, repository: string, name: string, days: number): Promise<void> {
  await sql`INSERT INTO registries (host) VALUES (${host}) ON CONFLICT DO NOTHING`.execute(db.db);
  await sql`INSERT INTO repositories (registry_id, name) SELECT id, ${repository} FROM registries WHERE host = ${host} ON CONFLICT DO NOTHING`.execute(db.db);
  await sql`INSERT INTO manifests (repository_id, digest, media_type, size, status, first_seen_at)
            SELECT r.id, ${digest(name)}, ${MANIFEST}, 1, 'unsigned', now() - make_interval(days => ${days})
            FROM repositories r JOIN registries g ON g.id = r.registry_id WHERE g.host = ${host} AND r.name = ${repository}`.execute(db.db);
}

type Row = Record<string, unknown>;
async function tallies(on: Kysely<DB>): Promise<Record<string, Row[]>> {
  const read = async (table: string, order: string, nonzero: string) =>
    (await sql<Row>`SELECT * FROM ${sql.table(table)} WHERE ${sql.raw(nonzero)} ORDER BY ${sql.raw(order)}`.execute(on)).rows;
  return {
    registry_tallies: await read('registry_tallies', 'registry_id', 'repositories <> 0 OR images <> 0 OR signed <> 0 OR verified <> 0'),
    registry_image_days: await read('registry_image_days', 'registry_id, day', 'images <> 0'),
    registry_signers: await read('registry_signers', 'registry_id, identity_id', 'images <> 0'),
    registry_decision_tallies: await read('registry_decision_tallies', 'registry_id, policy_version', 'allowed <> 0 OR denied <> 0'),
    registry_decision_days: await read('registry_decision_days', 'registry_id, policy_version, day', 'allowed <> 0 OR denied <> 0'),
  };
}

/** The overview from the tallies equals the aggregates, for every registry and policy version, and the tallies equal a rebuild. */
async function expectExact(): Promise<void> {
  const ids = (await db.db.selectFrom('registries').select('id').orderBy('id').execute()).map((r) => r.id);
  const versions = [...(await db.db.selectFrom('decisions').select('policy_version').distinct().execute()).map((r) => r.policy_version), NEVER];
  for (const id of ids) {
    for (const pv of versions) {
      expect(await registries.summary(db.db, id, pv)).toEqual(await aggregateSummary(db.db, id, pv));
      for (const days of [1, 3, 30, 366]) {
        expect(await registries.outcomes(db.db, id, pv, days)).toEqual(await aggregateOutcomes(db.db, id, pv, days));
      }
    }
    for (const first of [1, 2, 100]) {
      expect(await registries.topSigners(db.db, id, first)).toEqual(await aggregateTopSigners(db.db, id, first));
    }
  }
  const live = await tallies(db.db);
  const rebuilt = await db.db.connection().execute(async (c) => {
    await sql`BEGIN`.execute(c);
    try {
      await sql`SELECT signet_rebuild_registry_tallies()`.execute(c);
      return await tallies(c);
    } finally {
      await sql`ROLLBACK`.execute(c);
    }
  });
  expect(live).toEqual(rebuilt);
  // Nothing staged outlives its transaction.
  expect((await sql<{ n: string }>`SELECT (SELECT count(*) FROM registry_tally_deltas) + (SELECT count(*) FROM registry_tally_folds) AS n`.execute(db.db)).rows[0]!.n).toBe('0');
}

const sig = {
  alice: (m: string) => signatureRecord({ material: `${m} alice`, signer: ALICE }),
  alice2: (m: string) => signatureRecord({ material: `${m} alice again`, signer: ALICE }),
  bob: (m: string) => signatureRecord({ material: `${m} bob`, signer: BOB }),
  carol: (m: string) => signatureRecord({ material: `${m} carol`, signer: CAROL }),
  failed: (m: string) => signatureRecord({ material: `${m} failed`, signer: null, outcome: 'identity_mismatch' }),
  slsa: (m: string) => signatureRecord({ material: `${m} slsa`, signer: null, predicateType: SLSA }),
};

describe('registry tallies', () => {
  it('equal the aggregates over a ledger indexed in several registries and decided under a policy', async () => {
    await index('ghcr.test', 'team/web', manifest('web1', [sig.alice('web1')]), manifest('web2', [sig.alice('web2'), sig.alice2('web2'), sig.bob('web2')]));
    await index('ghcr.test', 'team/api', manifest('api1', []), manifest('api2', [sig.failed('api2')]), manifest('api3', [sig.slsa('api3')]));
    // A multi-arch index signed by carol, its two children unsigned.
    await index('ghcr.test', 'team/multi', manifest('idx', [sig.carol('idx')], { mediaType: INDEX }), manifest('amd64', [], { parent: 'idx' }), manifest('arm64', [], { parent: 'idx' }));
    await index('quay.test', 'lib/base', manifest('base1', [sig.bob('base1'), sig.failed('base1')]), manifest('base2', [sig.carol('base2')]));
    await index('registry.test', 'misc/tool', manifest('tool1', [sig.alice('tool1')]));
    // First seen 2, 40 and 400 days ago: inside and outside the 30- and 366-day windows.
    await seenDaysAgo('ghcr.test', 'team/old', 'old2', 2);
    await seenDaysAgo('ghcr.test', 'team/old', 'old40', 40);
    await seenDaysAgo('quay.test', 'lib/old', 'old400', 400);
    await index('ghcr.test', 'team/old', manifest('old2', [sig.alice('old2')]), manifest('old40', [sig.bob('old40')]));
    await expectExact();
    await decideAll(POLICY_A);
    await expectExact();
    // The same decisions again change nothing.
    await decideAll(POLICY_A);
    await expectExact();
    const ghcr = (await registries.find(db.db, 'ghcr.test'))!;
    expect(await registries.summary(db.db, ghcr.id, POLICY_A.version)).toMatchObject({ repositories: 4, images: 10 });
  });

  it('follow a re-index that withdraws signatures, and one that finds them again', async () => {
    const web2 = [sig.alice('web2'), sig.alice2('web2'), sig.bob('web2')];
    // bob's signature gone: bob no longer signs web2; one of alice's two gone: alice still does.
    await index('ghcr.test', 'team/web', manifest('web2', [web2[0]!], { sources: complete([web2[0]!]) }));
    await expectExact();
    // Every signature of web1 gone: unsigned now.
    await index('ghcr.test', 'team/web', manifest('web1', [], { sources: complete([]) }));
    await decideAll(POLICY_A);
    await expectExact();
    // Found again where clients look.
    await index('ghcr.test', 'team/web', manifest('web1', [sig.alice('web1')], { sources: complete([sig.alice('web1')]) }), manifest('web2', web2, { sources: complete(web2) }));
    await decideAll(POLICY_A);
    await expectExact();
  });

  it('follow a re-verification that changes verdicts, and a policy change', async () => {
    // Re-verified under a new trust root: bob's signature on base1 fails now, names no signer.
    await index('quay.test', 'lib/base', manifest('base1', [signatureRecord({ material: 'base1 bob', signer: null, outcome: 'untrusted_root' })]));
    await decideAll(POLICY_A);
    await expectExact();
    await decideAll(POLICY_B);
    await expectExact();
    // Back under A for some images only: both versions keep their own counts.
    const some = (await db.db.selectFrom('manifests').select('id').where('id', '<=', '6').execute()).map((r) => r.id);
    await decideAll(POLICY_B, some);
    await expectExact();
  });

  it('follow deletes of decisions, signatures and images; a deleted image (marked) still counts', async () => {
    const web1 = (await images.find(db.db, 'ghcr.test', 'team/web', { digest: digest('web1') }))!;
    await db.db.transaction().execute((trx) => images.markDeleted(trx, web1.repositoryId, web1.digest, new Date()));
    await expectExact();
    const tool = (await images.find(db.db, 'registry.test', 'misc/tool', { digest: digest('tool1') }))!;
    await db.db.deleteFrom('decisions').where('manifest_id', '=', tool.id).execute();
    await expectExact();
    await db.db.deleteFrom('signatures').where('manifest_id', '=', tool.id).execute();
    await expectExact();
    // The image and its repository, in one transaction.
    await db.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('ownership_changes').where('repository_id', '=', tool.repositoryId).execute();
      await trx.deleteFrom('manifests').where('id', '=', tool.id).execute();
      await trx.deleteFrom('repositories').where('id', '=', tool.repositoryId).execute();
    });
    await expectExact();
  });

  it('stay exact under concurrent writers in one registry and decisions spanning registries, without deadlocks', async () => {
    // Eight jobs at once in ghcr.test, each signing new images by alice and bob in opposite orders.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => {
        const [first, second] = i % 2 === 0 ? [sig.alice, sig.bob] : [sig.bob, sig.alice];
        return index('ghcr.test', `load/r${i}`, manifest(`load${i}a`, [first(`load${i}a`), second(`load${i}a`)]), manifest(`load${i}b`, [second(`load${i}b`), first(`load${i}b`)]));
      }),
    );
    // Two writers of the same image's signatures at once, through the ledger write (under the
    // repository lock) ...
    await Promise.all([index('ghcr.test', 'load/r0', manifest('load0a', [sig.carol('load0a')])), index('ghcr.test', 'load/r0', manifest('load0a', [sig.alice2('load0a')]))]);
    // ... and without it: dave signs an image twice in two transactions at once. The second waits
    // for the first to commit (the image's lock), then sees its signature: dave counts once.
    const load1a = (await images.find(db.db, 'ghcr.test', 'load/r1', { digest: digest('load1a') }))!;
    const { id: dave } = await db.db.insertInto('identities').values({ kind: 'email', subject: DAVE.subject, issuer: ISSUER }).returning('id').executeTakeFirstOrThrow();
    const signByDave = (on: Kysely<DB>, material: string) =>
      sql`INSERT INTO signatures (manifest_id, material_digest, format, source_digest, layer_index, layer_digest, outcome, identity_id, subject, payload, annotations)
          VALUES (${load1a.id}, ${sha256Digest(material)}, 'cosign_legacy', ${sha256Digest(`${material} source`)}, 0, ${sha256Digest(`${material} layer`)}, 'verified', ${dave}, ${DAVE.subject}, '\\x00', '{}')`.execute(on);
    await db.db.connection().execute((c1) =>
      db.db.connection().execute(async (c2) => {
        await sql`BEGIN`.execute(c1);
        await sql`BEGIN`.execute(c2);
        await signByDave(c1, 'dave 1');
        let secondDone = false;
        const second = signByDave(c2, 'dave 2').then(async () => {
          secondDone = true;
          await sql`COMMIT`.execute(c2);
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(secondDone).toBe(false);
        await sql`COMMIT`.execute(c1);
        await second;
      }),
    );
    const ghcr = (await registries.find(db.db, 'ghcr.test'))!;
    expect((await registries.topSigners(db.db, ghcr.id, 100)).find((s) => s.identityId === dave)).toEqual({ identityId: dave, images: 1 });
    // Decision batches over every registry, in opposite orders, at once.
    const ids = (await db.db.selectFrom('manifests').select('id').orderBy('id').execute()).map((r) => r.id);
    await Promise.all([decideAll(POLICY_A, ids), decideAll(POLICY_B, [...ids].reverse()), decideAll(POLICY_A, [...ids].reverse())]);
    await expectExact();
  });

  it('refuse to move an image or a repository, and follow TRUNCATE', async () => {
    await expect(sql`UPDATE manifests SET first_seen_at = first_seen_at - interval '1 day'`.execute(db.db)).rejects.toThrow(/manifests\.first_seen_at never changes/);
    await expect(sql`UPDATE manifests SET repository_id = repository_id + 1 WHERE id = 1`.execute(db.db)).rejects.toThrow(/manifests\.repository_id never changes/);
    await expect(sql`UPDATE repositories SET registry_id = registry_id + 1`.execute(db.db)).rejects.toThrow(/repositories\.registry_id never changes/);
    await expectExact();
    await sql`TRUNCATE decisions`.execute(db.db);
    await expectExact();
    await sql`TRUNCATE signatures, ownership_changes`.execute(db.db);
    await expectExact();
    await sql`TRUNCATE manifests, manifest_children, decisions, signatures, ownership_changes`.execute(db.db);
    await expectExact();
  });
});
