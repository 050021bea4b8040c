// Two jobs about one image at once, end to end with a real docker-registry read through a proxy
// that holds answers: the image's push job reads its signatures before the signature is pushed
// and records after the signature's own job recorded it. The older reading must not withdraw
// what the newer one found.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { answered, ask } from '../helpers/decisions.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { eventually, indexJobsEnded } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };

let stack: TestStack;
let proxy: FaultProxy;

beforeAll(async () => {
  stack = await startTestStack({
    name: 'concurrent',
    policy: (host) => policyAllowing(host, ALICE),
    env: async ({ host, port }) => {
      proxy = await startFaultProxy(`http://127.0.0.1:${port}`);
      return { SIGNET_REGISTRY_ENDPOINTS: `${host}=${proxy.url}`, SIGNET_RECONCILE_INTERVAL: '0' };
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
});


describe('concurrent discoveries of one image', () => {
  it("a push job that read the signatures before the signature was pushed does not withdraw what the signature's later job found", async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let reading = (): void => undefined;
    const read = new Promise<void>((r) => (reading = r));
    let holding = true;
    // Only the push job's first reading of the .sig tag is held; the signature job reads freely.
    proxy.setHold((req) => {
      if (!holding || !/^\/v2\/team\/app\/manifests\/sha256-[0-9a-f]{64}\.sig$/.test(req.url ?? '')) {
        return undefined;
      }
      holding = false;
      reading();
      return gate;
    });
    try {
      const before = await indexJobsEnded(stack.signet, 'indexed');
      const image = await pushRandomImage(stack.registry.url, 'team/app', 'v1');
      await read;
      await pushCosignSignatures(stack.registry.url, 'team/app', image.digest, [await stack.sigstore.signKeyless(simpleSigningPayload(`${stack.host}/team/app`, image.digest), ALICE)]);
      const ref = `${stack.host}/team/app@${image.digest}`;
      await answered(stack.signet, ref, { allowed: true });
      release();
      await eventually(async () => ((await indexJobsEnded(stack.signet, 'indexed')) >= before + 2 ? true : undefined), 'the push job to record');
      const rows = await stack.db.db
        .selectFrom('signatures as s')
        .innerJoin('manifests as m', 'm.id', 's.manifest_id')
        .select(['s.withdrawn_at', 's.withdrawn_by'])
        .where('m.digest', '=', image.digest)
        .execute();
      expect(rows).toEqual([{ withdrawn_at: null, withdrawn_by: null }]);
      expect(await ask(stack.signet, ref)).toMatchObject({ allowed: true, reason: 'verified' });
    } finally {
      release();
    }
  });
});
