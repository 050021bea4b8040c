// Where signatures are, end to end with a real docker-registry that notifies Signet: a registry
// whose images keep their signatures in another repository (cosign's COSIGN_REPOSITORY, the
// registries file's signaturesRepository), and a mirror whose images by digest are decided from
// the source's ledger entry (the registries file's mirrorOf).
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { answered, ask } from '../helpers/decisions.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { eventually, indexJobsEnded } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload } from '../signer/signer.ts';

const ISSUER = 'https://accounts.example.com';
const MIRROR = 'mirror.example.com';

let stack: TestStack;
/** Signet reads the registry through it; it passes everything unless a test holds answers. */
let proxy: FaultProxy;

async function sign(sigRepo: string, imageRepo: string, digest: Digest): Promise<void> {
  const { sigstore } = stack;
  await pushCosignSignatures(stack.registry.url, sigRepo, digest, [
    await sigstore.signKeyless(simpleSigningPayload(`${stack.host}/${imageRepo}`, digest), { email: 'alice@example.com', issuer: ISSUER }),
  ]);
}

beforeAll(async () => {
  stack = await startTestStack({
    name: 'sig-locations',
    policy: (host) => policyAllowing(host, { email: 'alice@example.com', issuer: ISSUER }, 'team/*'),
    env: async ({ tmp, host, port }) => {
      proxy = await startFaultProxy(`http://127.0.0.1:${port}`);
      const file = join(tmp, 'registries.yaml');
      await writeFile(
        file,
        `registries:\n  - host: "${host}"\n    insecure: true\n    signaturesRepository: "${host}/signatures/store"\n  - host: ${MIRROR}\n    mirrorOf: { registry: "${host}", prefix: cache }\n    reconcile: false\n`,
      );
      return { SIGNET_REGISTRIES_FILE: file, SIGNET_RECONCILE_INTERVAL: '0', SIGNET_REGISTRY_ENDPOINTS: `${host}=${proxy.url}` };
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
});


describe('signatures kept in another repository (COSIGN_REPOSITORY)', () => {
  it('a signature pushed to the signatures repository after the image allows it (the push is forwarded to the image)', async () => {
    const image = await pushRandomImage(stack.registry.url, 'team/app', 'v1');
    const ref = `${stack.host}/team/app@${image.digest}`;
    await answered(stack.signet, ref, { reason: 'unsigned' });
    await sign('signatures/store', 'team/app', image.digest);
    const allowed = await answered(stack.signet, ref, { allowed: true });
    expect(allowed).toMatchObject({ reason: 'verified', digest: image.digest, signers: [{ subject: 'alice@example.com', issuer: ISSUER }] });
  });

  it('a signature beside the image does not count: cosign does not look there when COSIGN_REPOSITORY is set', async () => {
    const beside = await pushRandomImage(stack.registry.url, 'team/beside', 'v1');
    const other = await pushRandomImage(stack.registry.url, 'team/other', 'v1');
    await answered(stack.signet, `${stack.host}/team/beside@${beside.digest}`, { reason: 'unsigned' });
    await answered(stack.signet, `${stack.host}/team/other@${other.digest}`, { reason: 'unsigned' });
    await sign('team/beside', 'team/beside', beside.digest);
    // A later push, waited for: by then the job of the signature beside the image has run too.
    await sign('signatures/store', 'team/other', other.digest);
    await answered(stack.signet, `${stack.host}/team/other@${other.digest}`, { allowed: true });
    const rows = await stack.db.db.selectFrom('signatures as s').innerJoin('manifests as m', 'm.id', 's.manifest_id').select('s.id').where('m.digest', '=', beside.digest).execute();
    expect(rows).toEqual([]);
    expect(await ask(stack.signet, `${stack.host}/team/beside@${beside.digest}`)).toMatchObject({ allowed: false, reason: 'unsigned' });
  });
});

describe('a signature pushed to the signatures repository while its image is being read', () => {
  it("is not missed when its job looks for the image after the image's job read the signatures and before that job recorded the image", async () => {
    // The image's job reads the signatures repository (.sig, .att and referrers, at once) and gets
    // its answers only after the signature's job has run: that job finds no image with the digest
    // in the ledger yet, and the image's job recorded none of it.
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let reading = (): void => undefined;
    const read = new Promise<void>((r) => (reading = r));
    let open = false;
    proxy.setHold((req) => {
      if (open || req.url?.startsWith('/v2/signatures/store/') !== true) {
        return undefined;
      }
      reading();
      return gate;
    });
    try {
      const image = await pushRandomImage(stack.registry.url, 'team/raced', 'v1');
      await read;
      const before = await indexJobsEnded(stack.signet, 'forwarded');
      await sign('signatures/store', 'team/raced', image.digest);
      await eventually(async () => ((await indexJobsEnded(stack.signet, 'forwarded')) > before ? true : undefined), "the signature's job to forward");
      expect(await stack.db.db.selectFrom('signature_arrivals').select('digest').where('digest', '=', image.digest).execute()).toHaveLength(1);
      open = true;
      release();
      const allowed = await answered(stack.signet, `${stack.host}/team/raced@${image.digest}`, { allowed: true });
      expect(allowed).toMatchObject({ reason: 'verified', signers: [{ subject: 'alice@example.com', issuer: ISSUER }] });
    } finally {
      open = true;
      release();
    }
  });
});

describe('mirrors', () => {
  it("a mirror's image by digest is decided from the source's ledger entry; by tag, or outside the prefix, it is not", async () => {
    const image = await pushRandomImage(stack.registry.url, 'team/mirrored', 'v1');
    await sign('signatures/store', 'team/mirrored', image.digest);
    await answered(stack.signet, `${stack.host}/team/mirrored@${image.digest}`, { allowed: true });
    expect(await ask(stack.signet, `${MIRROR}/cache/team/mirrored@${image.digest}`)).toMatchObject({ allowed: true, reason: 'verified', digest: image.digest });
    expect(await ask(stack.signet, `${MIRROR}/cache/team/mirrored:v1`)).toMatchObject({ allowed: false, reason: 'not_covered_by_policy' });
    expect(await ask(stack.signet, `${MIRROR}/other/team/mirrored@${image.digest}`)).toMatchObject({ allowed: false, reason: 'not_covered_by_policy' });
    const unsigned = await pushRandomImage(stack.registry.url, 'team/plain', 'v1');
    await answered(stack.signet, `${stack.host}/team/plain@${unsigned.digest}`, { reason: 'unsigned' });
    expect(await ask(stack.signet, `${MIRROR}/cache/team/plain@${unsigned.digest}`)).toMatchObject({ allowed: false, reason: 'unsigned' });
  });
});
