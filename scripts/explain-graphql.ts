// The query plan of every browsing query GraphQL makes, on a seeded ledger (scripts/seed-ledger.ts):
// each query module function is run once with a statement log, then each logged statement is
// EXPLAIN ANALYZEd with its parameters. Prints, per query, the plan's index use and time.
//
//   node scripts/explain-graphql.ts [--database postgres://…/signet_bench]
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Kysely, PostgresDialect, type CompiledQuery } from 'kysely';
import * as decisions from '../services/common/db/queries/decisions.ts';
import * as deliveries from '../services/common/db/queries/deliveries.ts';
import * as identities from '../services/common/db/queries/identities.ts';
import * as images from '../services/common/db/queries/images.ts';
import * as registries from '../services/common/db/queries/registries.ts';
import * as repositories from '../services/common/db/queries/repositories.ts';
import * as tags from '../services/common/db/queries/tags.ts';
import type { DB } from '../services/common/db/schema.generated.ts';
import type { Digest } from '../services/common/domain/digest.ts';

const { values } = parseArgs({ options: { database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/signet_bench' } } });
const pool = new pg.Pool({ connectionString: values.database, max: 2 });
let logged: CompiledQuery[] = [];
const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: (e) => void logged.push(e.query) });

const one = async (q: string) => ((await pool.query<Record<string, string>>(q)).rows[0] ?? {});
const pv = (await one(`SELECT policy_version AS v FROM decisions LIMIT 1`)).v ?? '';
// An image with a delivery (every fifth) and an attestation (every fourth) in the seed.
const m = await one(`SELECT m.id, m.digest, m.repository_id AS repo, r.name, g.host, g.id AS gid FROM manifests m JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id WHERE m.id = 400000`);
const who = await one(`SELECT identity_id AS id FROM signatures WHERE identity_id IS NOT NULL ORDER BY id DESC LIMIT 1`);
const host = m.host ?? '';
const SLSA = 'https://slsa.dev/provenance/v1';
const f = { policyVersion: pv };

const cases: [string, () => Promise<unknown>][] = [
  ['image(ref){owners signatures}: the image with its signatures, laterally', () => images.findWithSignatures(db, host, m.name ?? '', { digest: (m.digest ?? '') as Digest })],
  ['registries(search)', () => registries.pageRegistries(db, 'ghc', 20, null)],
  ['repositories(registry, search)', () => repositories.pageRepositories(db, host, 'org12/', 20, null)],
  ['repositories(search) across registries, page 2', () => repositories.pageRepositories(db, null, 'org12/', 20, '12')],
  ['identities(search)', () => identities.pageIdentities(db, { prefix: 'dev12' }, 20, null)],
  ['Registry.images(status: UNSIGNED)', () => images.pageImages(db, { kind: 'registry', host }, { ...f, status: ['unsigned'] }, 20, null)],
  ['Registry.images(decisionReason: IDENTITY_MISMATCH)', () => images.pageImages(db, { kind: 'registry', host }, { ...f, decisionReason: ['identity_mismatch'] }, 20, null)],
  ['Registry.images(missingAttestationPredicateType: SLSA)', () => images.pageImages(db, { kind: 'registry', host }, { ...f, missingAttestationPredicateType: SLSA }, 20, null)],
  ['Repository.images(hasAttestation: true)', () => images.pageImages(db, { kind: 'repository', repositoryId: m.repo ?? '' }, { ...f, hasAttestation: true }, 20, null)],
  ['Identity.images(first: 50)', () => images.pageImages(db, { kind: 'identity', identityId: who.id ?? '', registry: null, repository: null }, f, 50, null)],
  ['Identity.images(status: VERIFIED, attestationPredicateType)', () => images.pageImages(db, { kind: 'identity', identityId: who.id ?? '', registry: null, repository: null }, { ...f, status: ['verified'], attestationPredicateType: SLSA }, 50, null)],
  ['deliveries(digest)', () => deliveries.pageNaming(db, m.digest ?? '', 20, null)],
  ['Repository.tagAt', () => tags.moveAt(db, m.repo ?? '', `v${m.id ?? ''}`, new Date())],
  ['Image.decisionHistory', () => decisions.history(db, m.id ?? '', 20, 0)],
  ['denials(registry, reason)', () => decisions.pageDenials(db, pv, { registry: host, repository: null, reasons: ['identity_mismatch'] }, 20, null)],
  ['denials() page 2', () => decisions.pageDenials(db, pv, { registry: null, repository: null, reasons: null }, 20, m.id ?? null)],
  ['Registry.summary', () => registries.summary(db, m.gid ?? '', pv)],
  ['Registry.topSigners', () => registries.topSigners(db, m.gid ?? '', 10)],
  ['Registry.outcomes(30 days)', () => registries.outcomes(db, m.gid ?? '', pv, 30)],
];

for (const [name, run] of cases) {
  logged = [];
  await run();
  for (const q of logged) {
    const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) ${q.sql}`, q.parameters as unknown[]);
    const lines = plan.rows.map((r) => r['QUERY PLAN']);
    const scans = [...new Set(lines.flatMap((l) => /(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)?(?: using (\S+))? on (\S+)/.exec(l.trim())?.slice(0, 1).map(() => l.trim().replace(/\s+\(actual.*$/, '')) ?? []))];
    const time = lines.find((l) => l.startsWith('Execution Time'));
    console.log(`### ${name}\n${time}\n${scans.map((s) => `- ${s}`).join('\n')}\n`);
  }
}
await db.destroy();
