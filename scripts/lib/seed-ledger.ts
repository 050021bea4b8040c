// The synthetic ledger of scripts/seed-ledger.ts, for benchmarks and the tests that need a ledger
// of some size: `signatures` signatures on half as many images across `repositories` repositories
// (5 registries), signed by `identities` identities (keyless email and GitHub-workflow URIs, and
// keys), one to three owners per repository, tags and ownership changes; besides: one unsigned
// image per ten signed ones, an SLSA provenance attestation on every fourth image, a decision per
// image under SEED_POLICY_VERSION, and a distribution push delivery for every fifth image.
// Everything is generated inside Postgres (generate_series), in one transaction.
//
// Repository j is `org<j % 2000>/svc-<j>` in registry 1 + j % 5 (ghcr.io, docker.io, quay.io,
// registry.example.com, an ECR host); image i is in repository 1 + i % repositories. Identity k is
// a GitHub workflow of org<k % 2000> (k % 3 = 0), dev<k>@example.com (1) or a key (2); a
// repository's first signer is identity 1 + (j * 7) % identities.
import { readFile } from 'node:fs/promises';
import { sql, type Kysely } from 'kysely';
import { packageVersion } from '../../services/common/build-info.ts';
import type { DB } from '../../services/common/db/schema.generated.ts';

/** The policy version the seeded decisions are made under (not a policy Signet can parse). */
export const SEED_POLICY_VERSION = 'sha256:' + '5eed'.repeat(16);
/** The registries of the seed, in id order. */
export const SEED_REGISTRIES = ['ghcr.io', 'docker.io', 'quay.io', 'registry.example.com', '123456789012.dkr.ecr.us-east-1.amazonaws.com'] as const;
const PUBLIC_GOOD_REKOR = 'c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d';

export interface SeedSizes {
  readonly signatures: number;
  readonly repositories: number;
  readonly identities: number;
}

export interface SeedPolicy {
  /** The policy version the decisions are recorded under. */
  readonly version: string;
  /** Its text, stored in `policies` so that an API running that policy finds its decisions. */
  readonly source: string;
}

/** The tables the seed fills: their indexes are dropped during the load and built again after. */
const SEEDED_TABLES = [
  'registries',
  'repositories',
  'identities',
  'manifests',
  'tags',
  'tag_history',
  'signatures',
  'decisions',
  'webhook_deliveries',
  'ownership_changes',
];

/**
 * Empties the ledger and fills it with the synthetic one. `onStep` is told each step's wall time
 * and, when Postgres runs on this machine, its backend's CPU time: on a shared machine the wall
 * time says more about the neighbours than about the step.
 */
export async function seedLedger(
  db: Kysely<DB>,
  sizes: SeedSizes,
  onStep: (what: string, ms: number, cpuMs: number | null) => void = () => undefined,
  policy: SeedPolicy = { version: SEED_POLICY_VERSION, source: '# seeded' },
): Promise<void> {
  const { signatures: S, repositories: R, identities: I } = sizes;
  /** Two signatures per image. */
  const M = Math.max(1, Math.floor(S / 2));
  await db.transaction().execute(async (trx) => {
    const backend = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx)).rows[0]!.pid;
    const cpuMs = async () => {
      const stat = await readFile(`/proc/${backend}/stat`, 'utf8').catch(() => null);
      // utime and stime, in clock ticks (100 per second on Linux), after the parenthesised name.
      const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
      return fields === undefined ? null : (Number(fields[11]) + Number(fields[12])) * 10;
    };
    const step = async (what: string, q: ReturnType<typeof sql>) => {
      const [t, cpu] = [performance.now(), await cpuMs()];
      await q.execute(trx);
      const after = cpu === null ? null : await cpuMs();
      onStep(what, Math.round(performance.now() - t), cpu === null || after === null ? null : after - cpu);
    };
    // A bulk load: no foreign-key checks or triggers per row, and the indexes built once at the
    // end from sorted data rather than maintained row by row: every plain index of the seeded
    // tables, and their primary keys and unique constraints that no foreign key needs meanwhile.
    await step('bulk mode', sql`SET LOCAL session_replication_role = replica`);
    await step('bulk mode', sql`SET LOCAL maintenance_work_mem = '1GB'`);
    await step('bulk mode', sql`SET LOCAL work_mem = '256MB'`);
    const tables = SEEDED_TABLES.map((t) => `public.${t}`);
    const constraints = await sql<{ table: string; name: string; definition: string }>`
      SELECT c.conrelid::regclass::text AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition
      FROM pg_constraint c
      WHERE c.contype IN ('p', 'u') AND c.conrelid = ANY(${tables}::regclass[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid AND f.conindid = c.conindid)`.execute(trx);
    const plain = await sql<{ name: string; definition: string }>`
      SELECT (SELECT relname FROM pg_class WHERE oid = i.indexrelid) AS name, pg_get_indexdef(i.indexrelid) AS definition
      FROM pg_index i
      WHERE i.indrelid = ANY(${tables}::regclass[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`.execute(trx);
    // The digest format checks are regular expressions, about 13 µs a row each here (two per
    // signature): they are dropped too, and put back NOT VALID — enforced on every row written
    // after, not run over the generated digests, which are sha256 hex by construction.
    const checks = await sql<{ table: string; name: string; definition: string }>`
      SELECT c.conrelid::regclass::text AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition
      FROM pg_constraint c
      WHERE c.contype = 'c' AND c.conrelid = ANY(${tables}::regclass[]) AND pg_get_constraintdef(c.oid) LIKE '%~%'`.execute(trx);
    for (const { table, name } of [...constraints.rows, ...checks.rows]) {
      await sql`ALTER TABLE ${sql.id(table)} DROP CONSTRAINT ${sql.id(name)}`.execute(trx);
    }
    for (const { name } of plain.rows) {
      await sql`DROP INDEX ${sql.id(name)}`.execute(trx);
    }
    await step(
      'truncate',
      sql`TRUNCATE decisions, policies, ownership_changes, signatures, identities, tags, manifest_children, manifests, repositories, registries RESTART IDENTITY CASCADE`,
    );
    // webhook_deliveries refuses TRUNCATE (trigger); a rebuild starts it empty.
    await step('deliveries', sql`ALTER TABLE webhook_deliveries DISABLE TRIGGER webhook_deliveries_no_truncate`);
    await step('deliveries', sql`TRUNCATE webhook_deliveries RESTART IDENTITY`);
    await step('deliveries', sql`ALTER TABLE webhook_deliveries ENABLE TRIGGER webhook_deliveries_no_truncate`);
    // tag_history is append-only (trigger); a rebuild starts it empty.
    await step('tag history', sql`ALTER TABLE tag_history DISABLE TRIGGER tag_history_append_only`);
    await step('tag history', sql`TRUNCATE tag_history RESTART IDENTITY`);
    await step('tag history', sql`ALTER TABLE tag_history ENABLE TRIGGER tag_history_append_only`);
    await step(
      'registries',
      sql`INSERT INTO registries (host) VALUES ('ghcr.io'), ('docker.io'), ('quay.io'), ('registry.example.com'), ('123456789012.dkr.ecr.us-east-1.amazonaws.com')`,
    );
    await step(
      'repositories',
      sql`INSERT INTO repositories (registry_id, name)
          SELECT 1 + (i % 5), 'org' || (i % 2000) || '/svc-' || i FROM generate_series(0, ${R - 1}) i`,
    );
    // A third each: GitHub Actions workflows, Google accounts, keys.
    await step(
      'identities',
      sql`INSERT INTO identities (kind, subject, issuer)
          SELECT CASE i % 3 WHEN 0 THEN 'uri' WHEN 1 THEN 'email' ELSE 'key' END,
                 CASE i % 3
                   WHEN 0 THEN 'https://github.com/org' || (i % 2000) || '/repo' || i || '/.github/workflows/release.yml@refs/heads/main'
                   WHEN 1 THEN 'dev' || i || '@example.com'
                   ELSE 'sha256:' || encode(sha256(('key' || i)::bytea), 'hex') END,
                 CASE i % 3 WHEN 0 THEN 'https://token.actions.githubusercontent.com' WHEN 1 THEN 'https://accounts.google.com' ELSE NULL END
          FROM generate_series(0, ${I - 1}) i`,
    );
    // Image i + 1 carries signatures i, i + M, … (below), of which those numbered 19 mod 20 fail:
    // its counts and status are computed here rather than updated after; every fourth signed
    // image has an attestation.
    await step(
      'manifests',
      sql`INSERT INTO manifests (repository_id, digest, media_type, size, status, signature_count, verified_count, attestation_count, first_seen_at, indexed_at)
          SELECT 1 + (i % ${R}), 'sha256:' || encode(sha256(('m' || i)::bytea), 'hex'),
                 'application/vnd.oci.image.manifest.v1+json', 1000 + i % 5000, CASE WHEN v.ok > 0 THEN 'verified' ELSE 'identity_mismatch' END,
                 v.total, v.ok, CASE WHEN (i + 1) % 4 = 0 THEN 1 ELSE 0 END,
                 now() - make_interval(secs => ${M} - i), now() - make_interval(secs => ${M} - i)
          FROM generate_series(0, ${M - 1}) i
          CROSS JOIN LATERAL (
            SELECT count(*) AS total, count(*) FILTER (WHERE (i + k * ${M}) % 20 <> 19) AS ok
            FROM generate_series(0, ${Math.ceil(S / M) - 1}) k WHERE i + k * ${M} < ${S}
          ) v`,
    );
    await step(
      'tags',
      sql`INSERT INTO tags (repository_id, name, digest, updated_at)
          SELECT repository_id, 'v' || id, digest, first_seen_at FROM manifests`,
    );
    await step(
      'tag history',
      sql`INSERT INTO tag_history (repository_id, name, digest, seen_at)
          SELECT repository_id, 'v' || id, digest, first_seen_at FROM manifests`,
    );
    // Signature i is on image 1 + i % M: the first M are each image's first signature, by the
    // repository's main owner; the next M its second, by one of two co-owners (so a repository
    // has one to three owners). 1 in 20 fails verification and owns nothing.
    await step(
      'signatures',
      sql`INSERT INTO signatures (manifest_id, material_digest, format, source_digest, layer_index, layer_digest, outcome, reason,
                                  identity_id, subject, issuer, claims, key_fingerprint, key_source, certificate_fingerprint,
                                  rekor_log_id, rekor_log_index, rekor_integrated_time, trust_root_version, payload, annotations,
                                  first_seen_at, verified_at)
          SELECT s.manifest_id, 'sha256:' || encode(sha256(('s' || s.i)::bytea), 'hex'), 'cosign_legacy',
                 'sha256:' || encode(sha256(('sig' || s.manifest_id)::bytea), 'hex'), s.i / ${M},
                 'sha256:' || encode(sha256(('l' || s.i)::bytea), 'hex'),
                 CASE WHEN s.failed THEN 'identity_mismatch' ELSE 'verified' END,
                 CASE WHEN s.failed THEN 'certificate identity does not match the policy' END,
                 CASE WHEN s.failed THEN NULL ELSE id.id END, id.subject, id.issuer,
                 CASE WHEN id.kind = 'uri' THEN jsonb_build_object('issuer', id.issuer, 'sourceRepositoryUri',
                      'https://github.com/org' || (s.repo % 2000) || '/svc-' || s.repo, 'sourceRepositoryRef', 'refs/heads/main',
                      'buildTrigger', 'push', 'runnerEnvironment', 'github-hosted') ELSE '{}'::jsonb END,
                 CASE WHEN id.kind = 'key' THEN id.subject END,
                 CASE WHEN id.kind = 'key' THEN 'trusted_key' ELSE 'certificate' END,
                 CASE WHEN id.kind = 'key' THEN NULL ELSE 'sha256:' || encode(sha256(('c' || s.i)::bytea), 'hex') END,
                 ${PUBLIC_GOOD_REKOR}, 150000000 + s.i, now() - make_interval(secs => ${S} - s.i), 'sha256:seed',
                 convert_to('{"critical":{"image":{"docker-manifest-digest":"' || s.manifest_id || '"}}}', 'UTF8'), '{}'::jsonb,
                 now() - make_interval(secs => ${S} - s.i), now()
          FROM (
            SELECT i, 1 + (i % ${M}) AS manifest_id, (i % ${M}) % ${R} AS repo, i % 20 = 19 AS failed,
                   1 + (((i % ${M}) % ${R}) * 7 + CASE WHEN i < ${M} THEN 0 ELSE 1 + (i % 2) END) % ${I} AS identity_id
            FROM generate_series(0, ${S - 1}) i
          ) s JOIN identities id ON id.id = s.identity_id`,
    );
    await step(
      'unsigned images',
      sql`INSERT INTO manifests (repository_id, digest, media_type, size, status, signature_count, verified_count, first_seen_at, indexed_at)
          SELECT 1 + (i * 7 % ${R}), 'sha256:' || encode(sha256(('u' || i)::bytea), 'hex'),
                 'application/vnd.oci.image.manifest.v1+json', 2000 + i % 5000, 'unsigned', 0, 0,
                 now() - make_interval(secs => ${M} - i * 10), now() - make_interval(secs => ${M} - i * 10)
          FROM generate_series(0, ${Math.floor(M / 10) - 1}) i`,
    );
    await step(
      'attestations',
      sql`INSERT INTO signatures (manifest_id, material_digest, format, kind, predicate_type, source_digest, layer_index, layer_digest,
                                  outcome, subject, issuer, claims, key_source, rekor_log_id, rekor_log_index, rekor_integrated_time,
                                  trust_root_version, payload, annotations, first_seen_at, verified_at)
          SELECT m.id, 'sha256:' || encode(sha256(('a' || m.id)::bytea), 'hex'), 'cosign_attestation', 'attestation',
                 'https://slsa.dev/provenance/v1', 'sha256:' || encode(sha256(('att' || m.id)::bytea), 'hex'), 0,
                 'sha256:' || encode(sha256(('al' || m.id)::bytea), 'hex'), 'verified',
                 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0',
                 'https://token.actions.githubusercontent.com', '{}'::jsonb, 'certificate', ${PUBLIC_GOOD_REKOR}, 900000000 + m.id,
                 m.first_seen_at, 'sha256:seed', convert_to('{}', 'UTF8'), '{}'::jsonb, m.first_seen_at, now()
          FROM manifests m WHERE m.id % 4 = 0 AND m.status <> 'unsigned'`,
    );
    await step(
      'decisions',
      // The policy is recorded as this Signet version's workers leave one decided in full (complete,
      // counting decisions from before the first seeded one): a worker started on the seed under
      // it re-decides nothing, and API replicas serve it.
      sql`WITH p AS (INSERT INTO policies (version, source, decided_by, decided_from, complete_at)
                     VALUES (${policy.version}, ${policy.source}, ${packageVersion()}, now() - make_interval(secs => ${M + 86_400}), now()) RETURNING version)
          INSERT INTO decisions (manifest_id, policy_version, allowed, reason, message, verified_at, decided_at)
          SELECT m.id, p.version, m.status = 'verified', m.status,
                 CASE WHEN m.status = 'verified' THEN 'signed by a trusted identity' ELSE 'no signature satisfies the policy' END,
                 m.indexed_at, m.indexed_at
          FROM manifests m CROSS JOIN p`,
    );
    await step(
      'deliveries',
      sql`INSERT INTO webhook_deliveries (source, received_at, last_received_at, status_code, result, event_count, job_ids, payload, payload_sha256)
          SELECT 'distribution', m.first_seen_at, m.first_seen_at, 202, 'queued 1', 1, ARRAY['push-' || m.id], d.payload,
                 encode(sha256(convert_to(d.payload, 'UTF8')), 'hex')
          FROM manifests m JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
          CROSS JOIN LATERAL (SELECT '{"events":[{"id":"seed-' || m.id || '","timestamp":"' || to_char(m.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') ||
                 '","action":"push","target":{"mediaType":"' || m.media_type || '","size":' || m.size || ',"digest":"' || m.digest ||
                 '","repository":"' || r.name || '","url":"https://' || g.host || '/v2/' || r.name || '/manifests/' || m.digest ||
                 '","tag":"v' || m.id || '"},"request":{"host":"' || g.host || '","method":"PUT"},"source":{"addr":"registry:5000"}}]}' AS payload) d
          WHERE m.id % 5 = 0`,
    );
    // Ownership changes as the worker records them: each identity's first signature per repository.
    await step(
      'ownership changes',
      sql`INSERT INTO ownership_changes (repository_id, identity_id, manifest_id, kind, previous_owner_ids, detected_at, notified_at)
          SELECT repository_id, identity_id, manifest_id, CASE WHEN rank = 1 THEN 'initial' ELSE 'added' END,
                 coalesce(previous, '{}'), first_seen_at, now()
          FROM (
            SELECT f.*, row_number() OVER w AS rank,
                   array_agg(identity_id) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous
            FROM (
              SELECT DISTINCT ON (m.repository_id, s.identity_id) m.repository_id, s.identity_id, s.manifest_id, s.id AS signature_id, s.first_seen_at
              FROM signatures s JOIN manifests m ON m.id = s.manifest_id
              WHERE s.identity_id IS NOT NULL
              ORDER BY m.repository_id, s.identity_id, s.id
            ) f
            WINDOW w AS (PARTITION BY repository_id ORDER BY signature_id)
          ) ranked`,
    );
    for (const { table, name, definition } of constraints.rows) {
      await step(`index ${name}`, sql`ALTER TABLE ${sql.id(table)} ADD CONSTRAINT ${sql.id(name)} ${sql.raw(definition)}`);
    }
    for (const { table, name, definition } of checks.rows) {
      await step(`check ${name}`, sql`ALTER TABLE ${sql.id(table)} ADD CONSTRAINT ${sql.id(name)} ${sql.raw(definition)} NOT VALID`);
    }
    for (const { name, definition } of plain.rows) {
      await step(`index ${name}`, sql.raw(definition));
    }
    // The registry tallies' triggers did not fire during the load: one pass counts it.
    await step('tallies', sql`SELECT signet_rebuild_registry_tallies()`);
  });
  // What a lookup reads, as autovacuum leaves a ledger that has settled: statistics current, hint
  // bits written (or the first reads write them), the visibility map set (or an index-only scan
  // still reads the heap). Outside the transaction: VACUUM cannot run in one.
  for (const table of ['manifests', 'repositories', 'decisions', 'tags']) {
    const t = performance.now();
    await sql`VACUUM (ANALYZE) ${sql.table(table)}`.execute(db);
    onStep(`vacuum ${table}`, Math.round(performance.now() - t), null);
  }
}

/** What the ledger holds, by kind of row. */
export async function ledgerCounts(db: Kysely<DB>): Promise<Record<string, number>> {
  const counts = await sql<Record<string, string>>`
    SELECT (SELECT count(*) FROM signatures WHERE kind = 'signature') AS signatures,
           (SELECT count(*) FROM signatures WHERE kind = 'attestation') AS attestations, (SELECT count(*) FROM decisions) AS decisions,
           (SELECT count(*) FROM webhook_deliveries) AS deliveries, (SELECT count(*) FROM manifests) AS images,
           (SELECT count(*) FROM repositories) AS repositories, (SELECT count(*) FROM identities) AS identities,
           (SELECT count(*) FROM ownership_changes) AS "ownershipChanges"`.execute(db);
  return Object.fromEntries(Object.entries(counts.rows[0] ?? {}).map(([k, v]) => [k, Number(v)]));
}
