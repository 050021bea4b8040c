// The rows every ledger write starts from (repositories.lockAndEnsure, identities.ensure): created on
// first sight, then found with one statement, the same id every time; and what recording a signed
// image costs once they are known.
import type { KyselyPlugin, RootOperationNode, Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import type { SignatureRecord } from '../../services/common/domain/signature.ts';
import * as identities from '../../services/common/db/queries/identities.ts';
import * as images from '../../services/common/db/queries/images.ts';
import * as repositories from '../../services/common/db/queries/repositories.ts';
import type { DB } from '../../services/common/db/schema.generated.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { signatureRecord } from '../helpers/ledger.ts';

let test: TestDb;

beforeAll(async () => {
  test = await createTestDb();
});

afterAll(async () => {
  await test?.drop();
});

/** Runs `work` in a transaction and counts the statements it sent. */
async function counted<T>(work: (trx: Transaction<DB>) => Promise<T>): Promise<{ result: T; statements: number }> {
  let statements = 0;
  const counter: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: (args) => {
      statements++;
      return Promise.resolve(args.result);
    },
  };
  const result = await test.db.transaction().execute((trx) => work(trx.withPlugin(counter)));
  return { result, statements };
}

describe('ensure', () => {
  it('creates a registry and repository once, then finds the repository with one statement', async () => {
    const first = await counted((trx) => repositories.lockAndEnsure(trx, 'ensure.example', 'team/app'));
    expect(first.statements).toBe(5);
    const again = await counted((trx) => repositories.lockAndEnsure(trx, 'ensure.example', 'team/app'));
    expect(again).toEqual({ result: first.result, statements: 1 });
    // Another repository of the same registry, and the same name in another registry, are others.
    const sibling = await counted((trx) => repositories.lockAndEnsure(trx, 'ensure.example', 'team/web'));
    const elsewhere = await counted((trx) => repositories.lockAndEnsure(trx, 'other.example', 'team/app'));
    expect(new Set([first.result, sibling.result, elsewhere.result]).size).toBe(3);
    const rows = await test.db.selectFrom('repositories').select('id').execute();
    expect(rows).toHaveLength(3);
  });

  it('creates an identity once, with or without an issuer, then finds it with one statement', async () => {
    for (const issuer of ['https://accounts.example.com', null]) {
      const identity = { kind: 'email' as const, subject: 'alice@example.com', issuer };
      const first = await counted((trx) => identities.ensure(trx, identity));
      expect(first.statements).toBe(2);
      const again = await counted((trx) => identities.ensure(trx, identity));
      expect(again).toEqual({ result: first.result, statements: 1 });
    }
    const rows = await test.db.selectFrom('identities').select(['subject', 'issuer']).orderBy('id').execute();
    expect(rows).toEqual([
      { subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
      { subject: 'alice@example.com', issuer: null },
    ]);
  });
});

/**
 * A Kysely plugin that lists each statement answered: its node kind, a raw statement's first word,
 * or `template` for a statement template's (compiled once, so never transformed again).
 */
function statementLog(): { plugin: KyselyPlugin; sent: string[] } {
  const sent: string[] = [];
  const kinds = new WeakMap<object, string>();
  const describe = (node: RootOperationNode) => (node.kind === 'RawNode' ? node.sqlFragments.join('?').trim().split(/\s+/)[0]!.toUpperCase() : node.kind);
  return {
    sent,
    plugin: {
      transformQuery: (args) => {
        kinds.set(args.queryId, describe(args.node));
        return args.node;
      },
      transformResult: (args) => {
        sent.push(kinds.get(args.queryId) ?? 'template');
        return Promise.resolve(args.result);
      },
    },
  };
}

describe('recording a signed image', () => {
  const signature = (i: number) => signatureRecord({ material: `image ${i}`, signer: { kind: 'email', subject: 'alice@example.com', issuer: 'https://accounts.example.com' } });
  const indexed = (digest: Digest, sig: SignatureRecord) => ({
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 1,
    parent: null,
    signatures: [sig],
    discoveryError: null,
    sources: { listed: [sig.sourceDigest], pushed: [], complete: true },
  });

  it('takes the repository lock with its id, and writes a signature and the observation without statements of their own', async () => {
    // The repository and the signer are known (an earlier image); this one is the second.
    await images.recordIndexed(test.db, 'record.example', 'team/app', [indexed(sha256Digest('first-image'), signature(1))]);
    const log = statementLog();
    const [m] = (await images.recordIndexed(test.db.withPlugin(log.plugin), 'record.example', 'team/app', [indexed(sha256Digest('second-image'), signature(2))], { at: new Date(), by: 'reindex' })).manifests;
    expect(m).toMatchObject({ status: 'verified', verifiedCount: 1 });
    // One select for the lock and the repository id; no savepoint around the signature; the
    // manifest's observation claimed by its upsert, not by an UPDATE of its own.
    expect(log.sent.filter((k) => k === 'SAVEPOINT' || k === 'RELEASE')).toEqual([]);
    expect(log.sent.slice(0, 2)).toEqual(['template', 'InsertQueryNode']);
    expect(log.sent.filter((k) => k === 'UpdateQueryNode').length).toBeLessThanOrEqual(3);
    console.log(`statements recording a signed image (repository and signer known): ${log.sent.length} (${log.sent.join(', ')})`);
  });
});

