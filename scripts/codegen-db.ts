// Migrates a scratch database and regenerates services/common/db/schema.generated.ts from it.
// CI runs this and fails if the checked-in file differs (`git diff --exit-code`).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb } from '../services/common/db/client.ts';
import { ensureDatabase, migrateToLatest } from '../services/common/db/migrate.ts';
import { createLogger } from '../services/common/logger.ts';

const server = process.env.CODEGEN_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
const url = `${server}/signet_codegen_${process.pid}`;
const out = fileURLToPath(new URL('../services/common/db/schema.generated.ts', import.meta.url));
const log = createLogger({ logLevel: 'warn' });

// Text and JSON columns whose values are the domain's own types (CHECK constraints hold them to
// those values; the JSON ones are written only from these types): generated as those types, so rows
// read from them need no casts. Import paths are relative to the generated file.
const customImports = {
  AttestationCheck: '../domain/decision.ts',
  DecisionMode: '../domain/decision.ts',
  DecisionReason: '../domain/decision.ts',
  Digest: '../domain/digest.ts',
  ManifestStatus: '../domain/outcome.ts',
  SignatureOutcome: '../domain/outcome.ts',
  SignatureFormat: '../domain/signature.ts',
  SignatureKind: '../domain/signature.ts',
  ScopedDecision: '../domain/decision.ts',
  Signer: '../domain/decision.ts',
  WithdrawalCause: '../domain/signature.ts',
};
const overrides = {
  columns: {
    'decisions.attestations': 'JSONColumnType<AttestationCheck[] | null, string | null, string | null>',
    'decisions.mode': 'Generated<DecisionMode>',
    'decisions.reason': 'DecisionReason',
    'decisions.scoped': 'JSONColumnType<Record<string, ScopedDecision> | null, string | null, string | null>',
    'decisions.signers': 'Generated<JSONColumnType<Signer[]>>',
    'identities.kind': "'email' | 'uri' | 'key'",
    'manifests.digest': 'Digest',
    'manifests.status': 'ManifestStatus',
    'ownership_changes.kind': "'initial' | 'added'",
    'signatures.annotations': 'JSONColumnType<Record<string, string>>',
    'signatures.claims': 'Generated<JSONColumnType<Record<string, string>>>',
    'signatures.format': 'SignatureFormat',
    'signatures.kind': 'Generated<SignatureKind>',
    'signatures.material_digest': 'Digest',
    'signatures.outcome': 'SignatureOutcome',
    'signatures.source_digest': 'Digest',
    'signatures.withdrawn_by': 'WithdrawalCause | null',
    'tag_history.digest': 'Digest',
    'tag_history.previous_digest': 'Digest | null',
    'tags.digest': 'Digest',
  },
};

await ensureDatabase(url);
const db = createDb(url, log);
try {
  await migrateToLatest(db);
  execFileSync(
    fileURLToPath(new URL('../node_modules/.bin/kysely-codegen', import.meta.url)),
    [
      '--dialect',
      'postgres',
      '--url',
      url,
      '--out-file',
      out,
      '--exclude-pattern',
      'kysely_migration*',
      '--custom-imports',
      JSON.stringify(customImports),
      '--overrides',
      JSON.stringify(overrides),
    ],
    { stdio: 'inherit' },
  );
} finally {
  await db.destroy();
  const admin = new pg.Client({ connectionString: `${server}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(new URL(url).pathname.slice(1))}`);
  await admin.end();
}
