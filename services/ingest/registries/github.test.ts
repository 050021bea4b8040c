import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeGitHub } from './github.ts';

const DIR = 'webhooks/github';
const REAL_DIGEST = 'sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498';

describe('normalizeGitHub', () => {
  it.each([
    ['package', 'package.published.docker.payload.json'],
    ['registry_package', 'registry_package.published.docker.payload.json'],
  ])('turns the published %s example into a push of the package_version digest, not the 40-hex "digest"', (event, file) => {
    const d = normalizeGitHub(readFixtureJson(`${DIR}/${file}`), testContext({ deliveryId: 'delivery-1' }), event);
    expect(d.events).toEqual([
      {
        kind: 'push',
        eventId: 'delivery-1',
        registry: 'ghcr.io',
        repository: 'codertocat/hello-world',
        digest: REAL_DIGEST,
        mediaType: '',
        tag: null,
        at: '2019-05-09T23:28:29.000Z',
      },
    ]);
  });

  it('resolves a named tag when no field holds a valid digest', () => {
    const body = readFixtureJson<any>(`${DIR}/package.published.docker.payload.json`);
    const v = body.package.package_version;
    v.name = v.version = 'nightly';
    v.container_metadata.tag.name = 'nightly';
    const d = normalizeGitHub(body, testContext(), 'package');
    expect(d.events).toEqual([expect.objectContaining({ kind: 'tag-push', tag: 'nightly', reason: expect.stringContaining('6c62fb45') })]);
  });

  it('rejects a version with neither a valid digest nor a tag', () => {
    const body = readFixtureJson<any>(`${DIR}/package.published.docker.payload.json`);
    body.package.package_version.name = body.package.package_version.version = 'nightly';
    expect(normalizeGitHub(body, testContext(), 'package').rejected[0]!.reason).toContain('no tag to resolve');
  });

  it('ignores pings, npm packages and other actions', () => {
    const body = readFixtureJson<any>(`${DIR}/package.published.docker.payload.json`);
    expect(normalizeGitHub({ zen: 'hi' }, testContext(), 'ping').ignored[0]!.reason).toContain('"ping"');
    expect(normalizeGitHub({ ...body, action: 'deleted' }, testContext(), 'package').ignored[0]!.reason).toContain('"deleted"');
    const npm = structuredClone(body);
    npm.package.ecosystem = 'npm';
    expect(normalizeGitHub(npm, testContext(), 'package').ignored[0]!.reason).toContain('not a container');
  });
});
