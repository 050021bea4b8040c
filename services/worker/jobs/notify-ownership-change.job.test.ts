import { describe, expect, it } from 'vitest';
import type { Digest } from '../../common/domain/digest.ts';
import { ownershipAlertMessage } from './notify-ownership-change.job.ts';

describe('ownershipAlertMessage', () => {
  it('is a Slack incoming-webhook message naming the repository, the new signer, the image and who signed before', () => {
    const msg = ownershipAlertMessage({
      id: '7',
      kind: 'added',
      registry: 'ghcr.io',
      repository: 'acme/app',
      digest: `sha256:${'a'.repeat(64)}` as Digest,
      subject: 'mallory@example.com',
      issuer: 'https://accounts.google.com',
      previousOwners: [{ subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' }],
      detectedAt: new Date('2026-11-22T08:00:00Z'),
      notifiedAt: null,
    });
    expect(msg.text).toBe(
      ':warning: Ownership drift in ghcr.io/acme/app: mallory@example.com (https://accounts.google.com) signed ' +
        `ghcr.io/acme/app@sha256:${'a'.repeat(64)}, and had never signed in this repository before. ` +
        'Previous signers: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main (https://token.actions.githubusercontent.com).',
    );
    expect(msg.attachments).toEqual([
      expect.objectContaining({
        color: 'warning',
        fields: expect.arrayContaining([{ title: 'New signer', value: 'mallory@example.com (https://accounts.google.com)', short: true }]),
      }),
    ]);
  });
});
