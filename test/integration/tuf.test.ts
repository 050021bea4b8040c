// Trusted roots kept fresh over TUF, from a real TUF repository on loopback: the refreshed root
// verifies signatures the files alone do not, and when the repository goes away (offline,
// air-gapped) verification carries on from what was loaded. Start-up never waits for TUF.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../services/common/logger.ts';
import { startTufRefresher } from '../../services/core/verification/tuf.ts';
import type { LoadedTrustedRoot } from '../../services/core/verification/trust.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRegistry, type RunningRegistry } from '../helpers/registry.ts';
import { eventually, startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { startTufRepo, type TufRepoServer } from '../helpers/tuf-repo.ts';
import { createTestSigstore, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let fromFile: TestSigstore;
let fromTuf: TestSigstore;
let tuf: TufRepoServer;
let tufTarget: string;
let tmp: string;

beforeAll(async () => {
  [db, fromFile, fromTuf] = await Promise.all([createTestDb(), createTestSigstore(), createTestSigstore()]);
  tmp = await mkdtemp(join(tmpdir(), 'signet-tuf-'));
  tufTarget = JSON.stringify(fromTuf.trustedRoot);
  tuf = await startTufRepo([{ name: 'trusted_root.json', content: tufTarget }]);
  await writeFile(join(tmp, 'file-root.json'), JSON.stringify(fromFile.trustedRoot));
  await writeFile(join(tmp, 'tuf-root.json'), tuf.rootJson);
  const port = await freePort();
  signet = await startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_TRUSTED_ROOT: join(tmp, 'file-root.json'),
    SIGNET_INSECURE_REGISTRIES: `127.0.0.1:${port}`,
    // Often, so refreshes keep happening (and failing, once the repository is gone) during the test.
    SIGNET_TUF_REFRESH: '200ms',
    SIGNET_TUF_MIRROR: tuf.url,
    SIGNET_TUF_ROOT: join(tmp, 'tuf-root.json'),
    SIGNET_TUF_CACHE: join(tmp, 'tuf-cache'),
  });
  registry = await startRegistry({ port, notifications: { url: `${signet.url}/webhooks/distribution`, token: TEST_WEBHOOK_TOKEN } });
});

afterAll(async () => {
  await registry?.stop();
  await signet?.stop();
  await tuf?.close();
  await db?.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function pushSignedBy(sigstore: TestSigstore, repo: string) {
  const image = await pushRandomImage(registry.url, repo, 'v1');
  await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), ALICE)]);
  return eventually(async () => {
    const row = await db.db
      .selectFrom('signatures as s')
      .innerJoin('manifests as m', 'm.id', 's.manifest_id')
      .select(['s.outcome', 's.trust_root_version'])
      .where('m.digest', '=', image.digest)
      .executeTakeFirst();
    return row;
  }, `${repo} indexed`);
}

describe('TUF refresh', () => {
  it('verifies with the root the TUF repository serves, and still with the file root', async () => {
    await eventually(() => Promise.resolve(tuf.requests() > 0 ? true : undefined), 'the TUF repository was asked');
    const tufVersion = `sha256:${createHash('sha256').update(tufTarget).digest('hex')}`;
    const viaTuf = await eventually(async () => {
      const row = await pushSignedBy(fromTuf, `tuf/app-${Math.random().toString(36).slice(2, 8)}`);
      return row.outcome === 'verified' ? row : undefined;
    }, 'a signature from the TUF-served root verifies');
    expect(viaTuf.trust_root_version).toBe(tufVersion);
    expect(await pushSignedBy(fromFile, 'file/app')).toMatchObject({ outcome: 'verified' });
  });

  it('offline, the refresh fails and verification goes on with the roots already loaded', async () => {
    await tuf.close();
    // Several refreshes fail meanwhile (connection refused); the root they fetched before stays.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await pushSignedBy(fromTuf, 'offline/tuf')).toMatchObject({ outcome: 'verified' });
    expect(await pushSignedBy(fromFile, 'offline/file')).toMatchObject({ outcome: 'verified' });
  });

  it('a refresher whose mirror is unreachable reports null, logs, and never throws', async () => {
    const seen: LoadedTrustedRoot[] = [];
    const dead = `http://127.0.0.1:${await freePort()}`;
    const r = startTufRefresher(
      { mirrorUrl: dead, rootPath: join(tmp, 'tuf-root.json'), cachePath: join(tmp, 'dead-cache'), intervalMs: 3_600_000, timeoutMs: 2_000 },
      createLogger({ logLevel: 'silent' }),
      (root) => seen.push(root),
    );
    try {
      expect(await r.refresh()).toBeNull();
      expect(seen).toEqual([]);
    } finally {
      r.stop();
    }
  });
});
