import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeDockerHub } from './dockerhub.ts';

describe('normalizeDockerHub', () => {
  it('turns the published push into a tag push to resolve (Docker Hub sends no digest)', () => {
    const d = normalizeDockerHub(readFixtureJson('webhooks/dockerhub/push.json'), testContext());
    expect(d.events).toEqual([
      {
        kind: 'tag-push',
        eventId: 'svendowideit/testhook:latest@1417566161',
        registry: 'docker.io',
        repository: 'svendowideit/testhook',
        tag: 'latest',
        at: '2014-12-03T00:22:41.000Z',
        reason: 'no digest: the tag is resolved in the registry',
      },
    ]);
  });

  it('throws MALFORMED without push_data', () => {
    expect(() => normalizeDockerHub({ repository: { repo_name: 'a/b' } }, testContext())).toThrow(/^not a Docker Hub webhook: push_data/);
  });
});
