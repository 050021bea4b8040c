// Frozen tags. Attack: the ledger kept whichever tag record had the later event time; a sender's
// time is any string (distribution's `timestamp`, Harbor's `occur_at` up to year 5138), and the
// crawl recorded its corrections with the current time, so they always lost. After one delivery
// stamped 2099, a real push of an unsigned image and a backfill both left `prod` on the old signed
// digest (allowed). What must hold: event times are never in the future, and what the registry
// says now — seen by a later push's confirmation or by a crawl — moves the tag.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { runBackfill } from '../helpers/cli.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import { pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import { TEST_WEBHOOK_TOKEN } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { answered, ask } from '../helpers/decisions.ts';
import { ledgerTag, settled } from '../helpers/tags.ts';
import { distributionPush } from '../helpers/webhooks.ts';
import { simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const REPO = 'team/app';
const IN_2099 = new Date('2099-01-01T00:00:00Z');

async function pushSigned(stack: TestStack, tag: string | null): Promise<PushedImage> {
  const { registry, sigstore, host } = stack;
  const image = await pushRandomImage(registry.url, REPO, tag);
  await pushCosignSignatures(registry.url, REPO, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${host}/${REPO}`, image.digest), ALICE)]);
  return image;
}

/** Points `tag` at an image already in the registry (a retag: the manifest PUT again under the tag). */
async function retag(stack: TestStack, image: PushedImage, tag: string): Promise<void> {
  const res = await fetch(`${stack.registry.url}/v2/${REPO}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: new Uint8Array(image.bytes),
  });
  expect(res.status).toBe(201);
}

function deliver(stack: TestStack, digest: Digest, tag: string, at: Date) {
  return stack.signet.app.inject({
    method: 'POST',
    url: '/webhooks/distribution',
    headers: { authorization: `Bearer ${TEST_WEBHOOK_TOKEN}`, 'content-type': 'application/vnd.docker.distribution.events.v2+json' },
    payload: distributionPush({ host: stack.host, repository: REPO, digest, tag, at }),
  });
}

describe('a delivery stamped 2099, then real pushes notified by the registry', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ name: 'frozen-push', policy: (host) => policyAllowing(host, ALICE), env: () => ({ SIGNET_RECONCILE_INTERVAL: '0' }) });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('a later real push of an unsigned image moves prod, and so does a backfill', async () => {
    const { signet, registry, host, db } = stack;
    const prod = `${host}/${REPO}:prod`;
    const first = await pushRandomImage(registry.url, REPO, 'prod');
    await answered(signet, prod, { digest: first.digest, reason: 'unsigned' });

    // A signed image, then prod pointed at it — announced by one delivery stamped 2099 (a sender
    // with a broken clock, or anyone holding a webhook secret) and by the registry's own notification.
    const signed = await pushSigned(stack, null);
    await answered(signet, `${host}/${REPO}@${signed.digest}`, { allowed: true });
    const res = await deliver(stack, signed.digest, 'prod', IN_2099);
    expect(res.statusCode, res.body).toBe(202);
    await retag(stack, signed, 'prod');
    await answered(signet, prod, { digest: signed.digest, allowed: true });

    // A real push of an unsigned image under prod: the registry notifies with the current time.
    const unsigned = await pushRandomImage(registry.url, REPO, 'prod');
    await answered(signet, prod, { digest: unsigned.digest, allowed: false, reason: 'unsigned' });
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);

    // The crawl agrees with the registry: nothing moves back.
    await settled(signet.queue!);
    await runBackfill(signet, host, host);
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);
    expect(await ask(signet, prod)).toMatchObject({ digest: unsigned.digest, allowed: false });

    // What the 2099 delivery queued carries the time it was received, not 2099.
    for (const id of res.json<{ queued: string[] }>().queued) {
      const job = await signet.queue!.getJob(id);
      expect(Date.parse((job!.data as { eventAt: string }).eventAt), `${id}: no event time in the future`).toBeLessThanOrEqual(Date.now());
    }
  });
});

describe('a delivery stamped 2099, then a push whose notification is lost', () => {
  let stack: TestStack;

  beforeAll(async () => {
    // The registry notifies nobody: the test delivers what it wants Signet to hear.
    stack = await startTestStack({ name: 'frozen-crawl', notify: false, policy: (host) => policyAllowing(host, ALICE), env: () => ({ SIGNET_RECONCILE_INTERVAL: '0' }) });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('a backfill moves prod to what the registry holds', async () => {
    const { signet, registry, host, db } = stack;
    const prod = `${host}/${REPO}:prod`;
    // prod → a signed image, reported (truthfully, but stamped 2099) by the only delivery Signet gets.
    const signed = await pushSigned(stack, 'prod');
    const res = await deliver(stack, signed.digest, 'prod', IN_2099);
    expect(res.statusCode, res.body).toBe(202);
    await answered(signet, prod, { digest: signed.digest, allowed: true });

    // prod → an unsigned image; the notification is lost. The crawl finds it.
    const unsigned = await pushRandomImage(registry.url, REPO, 'prod');
    await settled(signet.queue!);
    const { stdout } = await runBackfill(signet, host, host);
    expect(stdout).toMatch(/1 tags recorded/);
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);
    await answered(signet, prod, { digest: unsigned.digest, allowed: false, reason: 'unsigned' });
  });

  it('a backfill also moves a tag a ledger written before the fix stamped 2099', async () => {
    const { signet, registry, host, db } = stack;
    const prod = `${host}/${REPO}:prod`;
    const signed = await pushSigned(stack, 'prod');
    await settled(signet.queue!);
    await runBackfill(signet, host, host);
    await answered(signet, prod, { digest: signed.digest, allowed: true });
    // What an earlier version left behind: the current tag row carries a time in the future.
    await db.db.updateTable('tags').set({ updated_at: IN_2099 }).where('name', '=', 'prod').execute();

    const unsigned = await pushRandomImage(registry.url, REPO, 'prod');
    await runBackfill(signet, host, host);
    expect(await ledgerTag(db, REPO, 'prod')).toBe(unsigned.digest);
    await answered(signet, prod, { digest: unsigned.digest, allowed: false, reason: 'unsigned' });
  });
});
