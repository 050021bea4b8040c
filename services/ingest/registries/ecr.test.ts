import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeEcr } from './ecr.ts';

const PUSH = 'webhooks/aws-ecr/image-action.push.json';
const VALID = `sha256:${'7f'.repeat(32)}`;

describe('normalizeEcr', () => {
  it('resolves the tag of the published push, whose digest has only 60 hex characters', () => {
    const d = normalizeEcr(readFixtureJson(PUSH), testContext());
    expect(d.events).toEqual([
      {
        kind: 'tag-push',
        eventId: '13cde686-328b-6117-af20-0e5566167482',
        registry: '123456789012.dkr.ecr.us-west-2.amazonaws.com',
        repository: 'my-repository-name',
        tag: 'latest',
        at: '2019-11-16T01:54:34.000Z',
        reason: expect.stringContaining('is not a sha256 digest'),
      },
    ]);
  });

  it('takes a valid digest as a push', () => {
    const body = readFixtureJson<any>(PUSH);
    body.detail['image-digest'] = VALID;
    expect(normalizeEcr(body, testContext()).events).toEqual([expect.objectContaining({ kind: 'push', digest: VALID, tag: 'latest' })]);
  });

  it('rejects the published delete (a wrong-length digest never marks a manifest)', () => {
    const d = normalizeEcr(readFixtureJson('webhooks/aws-ecr/image-action.delete.json'), testContext());
    expect(d.events).toEqual([]);
    expect(d.rejected[0]!.reason).toContain('never guesses');
  });

  it('turns a delete with a valid digest into a delete', () => {
    const body = readFixtureJson<any>('webhooks/aws-ecr/image-action.delete.json');
    body.detail['image-digest'] = VALID;
    expect(normalizeEcr(body, testContext()).events).toEqual([expect.objectContaining({ kind: 'delete', digest: VALID })]);
  });

  it('ignores failed actions and other event types', () => {
    const failed = readFixtureJson<any>(PUSH);
    failed.detail.result = 'FAILURE';
    expect(normalizeEcr(failed, testContext()).ignored[0]!.reason).toContain('did not succeed');
    const other = readFixtureJson<any>(PUSH);
    other['detail-type'] = 'ECR Image Scan';
    expect(normalizeEcr(other, testContext()).ignored[0]!.reason).toContain('is not an ECR Image Action');
  });

  it('throws MALFORMED for a body that is not an EventBridge event', () => {
    expect(() => normalizeEcr({ detail: {} }, testContext())).toThrow(/^not an EventBridge ECR Image Action event/);
  });
});
