// No Artifact Registry payload is published in a reachable repository (PROVENANCE.md, "Not found"):
// these messages follow the documented format (cloud.google.com/artifact-registry/docs/configure-notifications).
import { describe, expect, it } from 'vitest';
import { pubsubPush, testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeGar } from './gar.ts';

const IMAGE = 'us-east1-docker.pkg.dev/my-project/my-repo/hello-world';
const DIGEST = `sha256:${'6e'.repeat(32)}`;


describe('normalizeGar', () => {
  it('turns INSERT with digest and tag into a tagged push keyed by the Pub/Sub message id', () => {
    const d = normalizeGar(pubsubPush({ action: 'INSERT', digest: `${IMAGE}@${DIGEST}`, tag: `${IMAGE}:1.1` }), testContext());
    expect(d.events).toEqual([
      {
        kind: 'push',
        eventId: '2070443601311540',
        registry: 'us-east1-docker.pkg.dev',
        repository: 'my-project/my-repo/hello-world',
        digest: DIGEST,
        mediaType: '',
        tag: '1.1',
        at: '2021-02-26T19:13:55.749Z',
      },
    ]);
  });

  it('resolves a tag-only INSERT, deletes on DELETE', () => {
    expect(normalizeGar(pubsubPush({ action: 'INSERT', tag: `${IMAGE}:latest` }), testContext()).events).toEqual([expect.objectContaining({ kind: 'tag-push', tag: 'latest' })]);
    expect(normalizeGar(pubsubPush({ action: 'DELETE', digest: `${IMAGE}@${DIGEST}` }), testContext()).events).toEqual([expect.objectContaining({ kind: 'delete', digest: DIGEST })]);
  });

  it('rejects an invalid image name and throws MALFORMED for data that is not base64 JSON', () => {
    expect(normalizeGar(pubsubPush({ action: 'INSERT', digest: `${IMAGE}@sha256:abc` }), testContext()).rejected).toHaveLength(1);
    expect(() => normalizeGar({ message: { data: Buffer.from('nope').toString('base64') } }, testContext())).toThrow(/not base64 JSON/);
    expect(() => normalizeGar({ message: {} }, testContext())).toThrow(/^not a Pub\/Sub push message: message.data/);
  });
});
