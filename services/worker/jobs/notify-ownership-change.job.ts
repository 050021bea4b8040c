import { UnrecoverableError } from 'bullmq';
import type { Kysely } from 'kysely';
import * as ownership from '../../common/db/queries/ownership.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { NotifyOwnershipChangeJob } from '../../common/jobs/notify-ownership-change.ts';
import { implementJob } from '../kit.ts';

/** A Slack-compatible incoming-webhook message (also accepted by Mattermost, Rocket.Chat, Teams workflows). */
export function ownershipAlertMessage(c: ownership.OwnershipChangeDetail): Record<string, unknown> {
  const who = c.issuer === null ? c.subject : `${c.subject} (${c.issuer})`;
  const image = `${c.registry}/${c.repository}@${c.digest}`;
  const before = c.previousOwners.map((o) => (o.issuer === null ? o.subject : `${o.subject} (${o.issuer})`));
  const text = `:warning: Ownership drift in ${c.registry}/${c.repository}: ${who} signed ${image}, and had never signed in this repository before. Previous signers: ${before.join(', ') || 'none'}.`;
  return {
    text,
    attachments: [
      {
        color: 'warning',
        fallback: text,
        fields: [
          { title: 'Repository', value: `${c.registry}/${c.repository}`, short: true },
          { title: 'New signer', value: who, short: true },
          { title: 'Image', value: image, short: false },
          { title: 'Previous signers', value: before.join('\n') || 'none', short: false },
          { title: 'Detected at', value: c.detectedAt.toISOString(), short: true },
        ],
      },
    ],
  };
}

/**
 * Delivers drift alerts. A 4xx (other than 408/429) means the webhook URL or message is wrong and
 * will stay wrong: the job fails for good and stays visible. Anything else retries with backoff.
 */
export function notifyOwnershipChangeJob(deps: { db: Kysely<DB>; url: string; timeoutMs: number }) {
  return implementJob(NotifyOwnershipChangeJob, {
    bindings: (data) => ({ changeId: data.changeId }),
    async handle({ data, log }) {
      const change = await ownership.loadChange(deps.db, data.changeId);
      if (change === null) {
        throw new UnrecoverableError(`ownership change ${data.changeId} does not exist`);
      }
      if (change.notifiedAt !== null) {
        return 'already notified';
      }
      const res = await fetch(deps.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ownershipAlertMessage(change)),
        signal: AbortSignal.timeout(deps.timeoutMs),
        redirect: 'error',
      });
      await res.body?.cancel();
      if (!res.ok) {
        const message = `alert webhook answered ${res.status}`;
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          throw new UnrecoverableError(message);
        }
        throw new Error(message);
      }
      await ownership.markNotified(deps.db, change.id);
      log.info({ registry: change.registry, repository: change.repository }, 'ownership alert sent');
      return 'sent';
    },
    result: (outcome) => (outcome === 'sent' ? 'sent' : 'skipped'),
  });
}
