import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeQuay } from './quay.ts';

describe('normalizeQuay', () => {
  it('turns each updated tag into a tag push on the docker_url host, keyed by the body hash', () => {
    const d = normalizeQuay(readFixtureJson('webhooks/quay/repo_push.json'), testContext());
    expect(d.events).toEqual([
      expect.objectContaining({ kind: 'tag-push', eventId: `${'b'.repeat(64)}/0`, registry: 'quay.io', repository: 'dgangaia/test', tag: 'latest', at: '2026-01-01T00:00:00.000Z' }),
    ]);
  });

  it('rejects an invalid tag and ignores an empty push', () => {
    const body = readFixtureJson<Record<string, unknown>>('webhooks/quay/repo_push.json');
    expect(normalizeQuay({ ...body, updated_tags: ['ok', '-bad'] }, testContext()).rejected[0]!.reason).toContain('is not a tag');
    expect(normalizeQuay({ ...body, updated_tags: [] }, testContext()).ignored).toHaveLength(1);
  });
});
