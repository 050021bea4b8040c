// End to end on real parts: a real docker-registry (CNCF distribution 2.8) whose notifications
// point at an in-process Signet, real Postgres and Redis. Images and signatures are pushed through
// the registry's HTTP API; the assertions read the ledger.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { COSIGN_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE } from '../../services/core/verification/cosign-layer.ts';
import { pushBundleReferrer, pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { OCI_INDEX, OCI_MANIFEST, pushBlob, pushIndex, pushManifest, pushRandomImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, TEST_WEBHOOK_TOKEN, type TestSignet } from '../helpers/signet.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { createTestSigstore, generateTestKey, simpleSigningPayload, type TestKey, type TestSigstore } from '../signer/signer.ts';

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let rogue: TestSigstore;
let teamKey: TestKey;
let stack: TestStack;

beforeAll(async () => {
  teamKey = generateTestKey();
  stack = await startTestStack({
    name: 'e2e',
    env: async ({ tmp }) => {
      await mkdir(join(tmp, 'keys'));
      await writeFile(join(tmp, 'keys', 'team.pub'), teamKey.publicKeyPem);
      // Two verification threads whatever the machine: every verdict below comes through the pool.
      return { SIGNET_TRUSTED_KEYS: join(tmp, 'keys'), SIGNET_VERIFY_THREADS: '2' };
    },
  });
  ({ db, sigstore, registry, signet } = stack);
  rogue = await createTestSigstore();
});

afterAll(async () => {
  await stack?.stop();
});

function manifestRow(repo: string, digest: Digest) {
  return db.db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .innerJoin('registries as g', 'g.id', 'r.registry_id')
    .select(['m.id', 'm.status', 'm.status_reason', 'm.signature_count', 'm.verified_count', 'm.media_type', 'g.host'])
    .where('r.name', '=', repo)
    .where('m.digest', '=', digest)
    .executeTakeFirst();
}

function signaturesOf(manifestId: string) {
  return db.db
    .selectFrom('signatures')
    .selectAll()
    .where('manifest_id', '=', manifestId)
    .orderBy('id')
    .execute();
}

/** Waits until the manifest is indexed with at least `count` signatures, then returns it and them. */
async function indexed(repo: string, digest: Digest, count: number) {
  const m = await eventually(async () => {
    const row = await manifestRow(repo, digest);
    return row !== undefined && row.signature_count >= count ? row : undefined;
  }, `${repo}@${digest} indexed with ${count} signature(s)`);
  return { manifest: m, signatures: await signaturesOf(m.id) };
}

async function pushSigned(repo: string, tag: string | null, sign: (digest: Digest) => Promise<Parameters<typeof pushCosignSignatures>[3]>) {
  const image = await pushRandomImage(registry.url, repo, tag);
  await pushCosignSignatures(registry.url, repo, image.digest, await sign(image.digest));
  return image;
}

const ref = (repo: string) => `${registry.host}/${repo}`;

describe('a push to the real registry', () => {
  it('records a keyless-signed image as verified, with signer identity, issuer and Rekor log index', async () => {
    const repo = 'team-a/app';
    let rekor: { Payload: { logIndex: number; logID: string } } | undefined;
    const image = await pushSigned(repo, 'v1', async (digest) => {
      const layer = await sigstore.signKeyless(simpleSigningPayload(ref(repo), digest), {
        email: 'alice@example.com',
        issuer: 'https://accounts.example.com',
      });
      rekor = JSON.parse(layer.annotations[COSIGN_ANNOTATION.bundle]!) as typeof rekor;
      return [layer];
    });
    const { manifest, signatures } = await indexed(repo, image.digest, 1);
    expect(manifest).toMatchObject({ status: 'verified', verified_count: 1, host: registry.host });
    expect(signatures).toHaveLength(1);
    const [sig] = signatures;
    expect(sig).toMatchObject({
      format: 'cosign_legacy',
      outcome: 'verified',
      reason: null,
      subject: 'alice@example.com',
      issuer: 'https://accounts.example.com',
      key_source: 'certificate',
      rekor_log_index: String(rekor!.Payload.logIndex),
      rekor_log_id: rekor!.Payload.logID,
    });
    expect(sig!.claims).toMatchObject({ issuer: 'https://accounts.example.com' });
    expect(Buffer.from(sig!.payload).toString()).toContain(image.digest);

    const identity = await db.db.selectFrom('identities').selectAll().where('id', '=', sig!.identity_id!).executeTakeFirstOrThrow();
    expect(identity).toMatchObject({ kind: 'email', subject: 'alice@example.com', issuer: 'https://accounts.example.com' });

    const tag = await db.db.selectFrom('tags').select(['name', 'digest']).where('name', '=', 'v1').execute();
    expect(tag).toEqual([{ name: 'v1', digest: image.digest }]);
  });

  it('records a GitHub Actions workflow identity with its Fulcio claims', async () => {
    const repo = 'team-b/service';
    const workflow = 'https://github.com/acme/service/.github/workflows/release.yml@refs/tags/v2.0.0';
    const image = await pushSigned(repo, 'v2.0.0', async (digest) => [
      await sigstore.signKeyless(simpleSigningPayload(ref(repo), digest), {
        uri: workflow,
        issuer: 'https://token.actions.githubusercontent.com',
        claims: { 9: workflow, 12: 'https://github.com/acme/service', 13: 'a'.repeat(40), 14: 'refs/tags/v2.0.0', 20: 'push' },
      }),
    ]);
    const { manifest, signatures } = await indexed(repo, image.digest, 1);
    expect(manifest.status).toBe('verified');
    expect(signatures[0]).toMatchObject({ subject: workflow, issuer: 'https://token.actions.githubusercontent.com' });
    expect(signatures[0]!.claims).toEqual({
      issuerV1: 'https://token.actions.githubusercontent.com',
      issuer: 'https://token.actions.githubusercontent.com',
      buildSignerUri: workflow,
      sourceRepositoryUri: 'https://github.com/acme/service',
      sourceRepositoryDigest: 'a'.repeat(40),
      sourceRepositoryRef: 'refs/tags/v2.0.0',
      buildTrigger: 'push',
    });
  });

  it('records key-based signatures: a trusted key, and a key known only from its Rekor entry', async () => {
    const repo = 'team-c/tool';
    const stranger = generateTestKey();
    const image = await pushSigned(repo, 'stable', async (digest) => [
      await sigstore.signWithKey(simpleSigningPayload(ref(repo), digest), teamKey),
      await sigstore.signWithKey(simpleSigningPayload(ref(repo), digest), stranger, { tlog: true }),
    ]);
    const { manifest, signatures } = await indexed(repo, image.digest, 2);
    expect(manifest).toMatchObject({ status: 'verified', verified_count: 2 });
    expect(signatures.map((s) => [s.outcome, s.key_source, s.key_name])).toEqual([
      ['verified', 'trusted_key', 'team'],
      ['verified', 'tlog', null],
    ]);
    expect(signatures[0]!.rekor_log_index).toBeNull();
    expect(signatures[1]!.rekor_log_index).not.toBeNull();
  });

  it('records an image with no signature as unsigned', async () => {
    const repo = 'team-a/unsigned';
    const image = await pushRandomImage(registry.url, repo, 'latest');
    const m = await eventually(() => manifestRow(repo, image.digest), 'unsigned image indexed');
    expect(m).toMatchObject({ status: 'unsigned', signature_count: 0 });
  });

  it('indexes a multi-arch index and its children with their platforms, each with its own signatures', async () => {
    const repo = 'team-a/multi';
    const index = await pushIndex(registry.url, repo, 'v3');
    const [amd64] = index.index.manifests;
    await pushCosignSignatures(registry.url, repo, index.digest, [
      await sigstore.signKeyless(simpleSigningPayload(ref(repo), index.digest), { email: 'alice@example.com', issuer: 'https://accounts.example.com' }),
    ]);
    await pushCosignSignatures(registry.url, repo, amd64!.digest, [
      await sigstore.signKeyless(simpleSigningPayload(ref(repo), amd64!.digest), { email: 'bob@example.com', issuer: 'https://accounts.example.com' }),
    ]);
    const parent = await indexed(repo, index.digest, 1);
    expect(parent.manifest).toMatchObject({ status: 'verified', media_type: 'application/vnd.oci.image.index.v1+json' });
    const child = await indexed(repo, amd64!.digest, 1);
    expect(child.signatures[0]).toMatchObject({ outcome: 'verified', subject: 'bob@example.com' });
    const children = await db.db
      .selectFrom('manifest_children as c')
      .innerJoin('manifests as m', 'm.id', 'c.child_id')
      .select(['m.digest', 'c.position', 'c.platform_os', 'c.platform_architecture', 'c.platform_variant'])
      .where('c.index_id', '=', parent.manifest.id)
      .orderBy('c.position')
      .execute();
    expect(children).toEqual([
      { digest: amd64!.digest, position: 0, platform_os: 'linux', platform_architecture: 'amd64', platform_variant: null },
      { digest: index.index.manifests[1]!.digest, position: 1, platform_os: 'linux', platform_architecture: 'arm64', platform_variant: 'v8' },
    ]);
  });

  it('keeps every tag move in the tag history', async () => {
    const repo = 'team-a/moving';
    const first = await pushRandomImage(registry.url, repo, 'latest');
    // A tag move is recorded once Signet has seen it in the registry: the first one before the second push.
    await eventually(() => manifestRow(repo, first.digest), 'first image indexed');
    const second = await pushRandomImage(registry.url, repo, 'latest');
    await eventually(() => manifestRow(repo, second.digest), 'second image indexed');
    const history = await db.db
      .selectFrom('tag_history as h')
      .innerJoin('repositories as r', 'r.id', 'h.repository_id')
      .select(['h.digest', 'h.previous_digest'])
      .where('r.name', '=', repo)
      .where('h.name', '=', 'latest')
      .orderBy('h.id')
      .execute();
    expect(history).toEqual([
      { digest: first.digest, previous_digest: null },
      { digest: second.digest, previous_digest: first.digest },
    ]);
  });
});

describe('forged, replayed and untrusted signatures pushed to the real registry', () => {
  async function expectNothingVerified(repo: string, digest: Digest, outcome: string) {
    const { manifest, signatures } = await indexed(repo, digest, 1);
    expect(manifest.status).toBe(outcome);
    expect(manifest.verified_count).toBe(0);
    expect(signatures.every((s) => s.outcome === outcome && s.identity_id === null)).toBe(true);
  }

  it('a valid signature copied from another image is digest_mismatch', async () => {
    const repo = 'team-a/replay';
    const original = await pushRandomImage(registry.url, repo, 'genuine');
    const layer = await sigstore.signKeyless(simpleSigningPayload(ref(repo), original.digest), {
      email: 'alice@example.com',
      issuer: 'https://accounts.example.com',
    });
    const victim = await pushRandomImage(registry.url, repo, 'evil');
    await pushCosignSignatures(registry.url, repo, victim.digest, [layer]);
    await expectNothingVerified(repo, victim.digest, 'digest_mismatch');
  });

  it('a tampered payload is invalid_signature', async () => {
    const repo = 'team-a/tampered';
    const image = await pushSigned(repo, 'x', async (digest) => {
      const layer = await sigstore.signKeyless(simpleSigningPayload(ref(repo), digest), {
        email: 'alice@example.com',
        issuer: 'https://accounts.example.com',
      });
      return [{ ...layer, payload: simpleSigningPayload(ref(repo), digest, { env: 'prod' }) }];
    });
    await expectNothingVerified(repo, image.digest, 'invalid_signature');
  });

  it('a certificate from a CA outside the trusted root is untrusted_root', async () => {
    const repo = 'team-a/rogue-ca';
    const image = await pushSigned(repo, 'x', async (digest) => [
      await rogue.signKeyless(simpleSigningPayload(ref(repo), digest), { email: 'alice@example.com', issuer: 'https://accounts.example.com' }),
    ]);
    await expectNothingVerified(repo, image.digest, 'untrusted_root');
  });

  it('a signature by a key nobody trusts (and no Rekor entry) is untrusted_root', async () => {
    const repo = 'team-a/wrong-key';
    const image = await pushSigned(repo, 'x', async (digest) => [
      await sigstore.signWithKey(simpleSigningPayload(ref(repo), digest), generateTestKey()),
    ]);
    await expectNothingVerified(repo, image.digest, 'untrusted_root');
  });
});

describe('signature pushes', () => {
  it('index the signature manifest the event names, even when the tag does not (yet) point at it', async () => {
    // distribution notifies about a manifest push before it links the tag; the job must use the
    // digest in the event. Simulate the window: the .sig tag holds an old, forged signature while
    // the event names a new manifest pushed by digest only.
    const repo = 'team-a/race';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [
      await rogue.signKeyless(simpleSigningPayload(ref(repo), image.digest), { email: 'mallory@example.com', issuer: 'https://accounts.example.com' }),
    ]);
    await indexed(repo, image.digest, 1);
    const genuine = await sigstore.signKeyless(simpleSigningPayload(ref(repo), image.digest), {
      email: 'alice@example.com',
      issuer: 'https://accounts.example.com',
    });
    const untagged = await pushCosignSignatures(registry.url, repo, image.digest, [genuine], { tagged: false });
    await signet.queue!.add('index-manifest', {
      registry: registry.host,
      repository: repo,
      digest: image.digest,
      trigger: { kind: 'signature', artifactDigest: untagged, tag: `sha256-${image.digest.slice(7)}.sig` },
      eventAt: new Date().toISOString(),
    });
    const { manifest, signatures } = await indexed(repo, image.digest, 2);
    expect(manifest.status).toBe('verified');
    expect(signatures.map((s) => [s.subject, s.outcome, s.source_digest === untagged])).toEqual([
      // A certificate from an untrusted CA proves nobody: no identity is recorded for it.
      [null, 'untrusted_root', false],
      ['alice@example.com', 'verified', true],
    ]);
  });
});

describe('hostile signature artifacts', () => {
  it('an index pushed under the .sig tag leaves the image malformed, with the reason', async () => {
    const repo = 'team-a/hostile-sig';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushIndex(registry.url, repo, `sha256-${image.digest.slice(7)}.sig`);
    const m = await eventually(async () => {
      const row = await manifestRow(repo, image.digest);
      return row?.status === 'malformed' ? row : undefined;
    }, 'image marked malformed');
    expect(m.status_reason).toContain('holds an index');
    expect(m.signature_count).toBe(0);
  });

  it('a .sig manifest with thousands of layers is refused as malformed, with the reason', async () => {
    const repo = 'team-a/many-layers';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    const payload = simpleSigningPayload(ref(repo), image.digest);
    const blob = await pushBlob(registry.url, repo, payload);
    const config = await pushBlob(registry.url, repo, Buffer.from('{}'));
    const layer = { mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest: blob, size: payload.length, annotations: { [COSIGN_ANNOTATION.signature]: 'AAAA' } };
    await pushManifest(
      registry.url,
      repo,
      `sha256-${image.digest.slice(7)}.sig`,
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 }, layers: Array.from({ length: 3000 }, () => layer) },
      OCI_MANIFEST,
    );
    // distribution's notification lists every layer (over 1 MiB here) and is retried until accepted.
    const m = await eventually(async () => {
      const row = await manifestRow(repo, image.digest);
      return row?.status === 'malformed' ? row : undefined;
    }, 'image marked malformed');
    expect(m.status_reason).toMatch(/more than 1000 layers/);
    expect(m.verified_count).toBe(0);
  });

  it('garbage in every format is a malformed row with a reason, never verified', async () => {
    const repo = 'team-a/garbage';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [
      { payload: Buffer.from('\u0000 not json'), annotations: { [COSIGN_ANNOTATION.signature]: 'AAAA' } },
      {
        payload: simpleSigningPayload(ref(repo), image.digest),
        annotations: { [COSIGN_ANNOTATION.signature]: 'AAAA', [COSIGN_ANNOTATION.certificate]: '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n' },
      },
    ]);
    await pushCosignAttestations(registry.url, repo, image.digest, [{ payload: Buffer.from('{"payloadType":"x"}'), annotations: {} }]);
    await pushBundleReferrer(
      registry.url,
      repo,
      { digest: image.digest, mediaType: OCI_MANIFEST, size: image.bytes.length },
      Buffer.from(JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.9+json' })),
      null,
    );
    const { signatures } = await indexed(repo, image.digest, 2);
    // Each artifact comes in its own push notification, so the .att may be indexed before the
    // .sig: compare rows grouped by format (stable within one artifact's layers), not by id.
    const rank = ['cosign_legacy', 'cosign_attestation', 'sigstore_bundle'];
    const all = await eventually(async () => {
      const rows = await signaturesOf((await manifestRow(repo, image.digest))!.id);
      return rows.length >= 4 ? rows.sort((a, b) => rank.indexOf(a.format) - rank.indexOf(b.format)) : undefined;
    }, 'four rows');
    expect(signatures.length).toBeGreaterThanOrEqual(2);
    expect(all.map((r) => [r.format, r.outcome])).toEqual([
      ['cosign_legacy', 'malformed'],
      ['cosign_legacy', 'malformed'],
      ['cosign_attestation', 'malformed'],
      ['sigstore_bundle', 'malformed'],
    ]);
    expect(all.map((r) => r.reason)).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/certificate/),
      expect.stringMatching(/DSSE envelope/),
      expect.stringMatching(/unsupported bundle media type/),
    ]);
    expect((await manifestRow(repo, image.digest))!.status).toBe('malformed');
  });

  it('an index nested in an index is recorded, and its own children are not walked (bounded work, no cycles)', async () => {
    const repo = 'team-a/nested';
    const inner = await pushIndex(registry.url, repo, 'inner');
    const outer = await pushManifest(
      registry.url,
      repo,
      'outer',
      { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: inner.digest, size: inner.bytes.length }] },
      OCI_INDEX,
    );
    await eventually(async () => ((await manifestRow(repo, outer)) === undefined ? undefined : true), 'outer index recorded');
    const children = await db.db
      .selectFrom('manifest_children as c')
      .innerJoin('manifests as p', 'p.id', 'c.index_id')
      .innerJoin('manifests as k', 'k.id', 'c.child_id')
      .select(['p.digest as parent', 'k.digest as child'])
      .where('p.digest', '=', outer)
      .execute();
    expect(children).toEqual([{ parent: outer, child: inner.digest }]);
  });
});

describe('redelivery', () => {
  it('a duplicate delivery yields one job and no new rows', async () => {
    const repo = 'team-a/dupe';
    const image = await pushSigned(repo, 'v1', async (digest) => [
      await sigstore.signKeyless(simpleSigningPayload(ref(repo), digest), { email: 'alice@example.com', issuer: 'https://accounts.example.com' }),
    ]);
    await indexed(repo, image.digest, 1);
    const deliveries = await db.db
      .selectFrom('webhook_deliveries')
      .select(['payload', 'content_type', 'job_ids'])
      .where('payload', 'like', `%${image.digest}%`)
      .execute();
    expect(deliveries.length).toBeGreaterThan(0);
    const before = await db.db.selectFrom('signatures').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    for (const d of deliveries) {
      const res = await signet.app.inject({
        method: 'POST',
        url: '/webhooks/distribution',
        headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': d.content_type! },
        payload: d.payload,
      });
      expect(res.statusCode).toBe(202);
      // Same deterministic ids as the first delivery: BullMQ keeps the completed job and adds nothing.
      expect(res.json<{ queued: string[] }>().queued).toEqual(d.job_ids);
      for (const id of d.job_ids) {
        expect(await signet.queue!.getJobState(id)).toBe('completed');
      }
    }
    const after = await db.db.selectFrom('signatures').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
    const rows = await manifestRow(repo, image.digest);
    expect(rows?.signature_count).toBe(1);
  });
});
