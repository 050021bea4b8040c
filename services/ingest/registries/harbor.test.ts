import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { harborCloudEventsPush, testContext } from '../../../test/helpers/webhooks.ts';
import { WebhookError } from '../../common/errors.ts';
import { normalizeHarbor } from './harbor.ts';

const DIGEST_PUSHED = 'sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4';
const DIGEST_DELETED = 'sha256:2bb501e6173d9d006e56de5bce2720eb06396803300fe1687b58a7ff32bf4c14';

/** The published CloudEvents example with its `//` comment lines removed. */

describe('normalizeHarbor', () => {
  it('turns a Default-format PUSH_ARTIFACT into a push by digest (its tag is the digest: no tag)', () => {
    const d = normalizeHarbor(readFixtureJson('webhooks/harbor/push-artifact.default.json'), testContext());
    expect(d.events).toEqual([
      {
        kind: 'push',
        eventId: `${'b'.repeat(64)}/0`,
        registry: 'localhost',
        repository: 'harbor/alpine',
        digest: DIGEST_PUSHED,
        mediaType: '',
        tag: null,
        at: '2023-04-03T06:04:53.000Z',
      },
    ]);
  });

  it('turns the CloudEvents harbor.artifact.pushed into the same push, keyed by the CloudEvent id', () => {
    const d = normalizeHarbor(JSON.parse(harborCloudEventsPush()), testContext());
    expect(d.events).toEqual([
      expect.objectContaining({ kind: 'push', eventId: '66e18103-09c1-41f6-982f-37df223f3eeb/0', digest: DIGEST_PUSHED, at: '2023-04-03T06:04:46.000Z' }),
    ]);
  });

  it.each(['delete-artifact.default.json', 'delete-artifact.cloudevents.json'])('turns %s into a delete with its tag', (file) => {
    const d = normalizeHarbor(readFixtureJson(`webhooks/harbor/${file}`), testContext());
    expect(d.events).toEqual([expect.objectContaining({ kind: 'delete', registry: 'localhost', repository: 'harbor/alpine', digest: DIGEST_DELETED, tag: '3.8' })]);
  });

  it.each(['pull-artifact.default.json', 'scanning-completed.default.json'])('ignores %s', (file) => {
    const d = normalizeHarbor(readFixtureJson(`webhooks/harbor/${file}`), testContext());
    expect(d.events).toEqual([]);
    expect(d.ignored).toHaveLength(1);
    expect(d.ignored[0]!.reason).toMatch(/is not a push or delete/);
  });

  it('names the registry the secret belongs to rather than resource_url', () => {
    const d = normalizeHarbor(readFixtureJson('webhooks/harbor/push-artifact.default.json'), testContext({ registry: 'harbor.example.com' }));
    expect(d.events[0]).toMatchObject({ registry: 'harbor.example.com' });
  });

  it('throws MALFORMED for a body that is neither format', () => {
    expect(() => normalizeHarbor({ type: 'PUSH_ARTIFACT' }, testContext())).toThrow(WebhookError);
    expect(() => normalizeHarbor({ type: 'PUSH_ARTIFACT' }, testContext())).toThrow(/^not a Harbor webhook/);
  });
});
