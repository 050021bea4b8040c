import { eventually, type TestSignet } from './signet.ts';

/** What the native decision endpoint answers for one image reference. */
export interface Answer {
  readonly allowed: boolean;
  readonly reason: string;
  readonly digest: string | null;
  readonly signers: readonly { subject: string; issuer: string | null }[];
  readonly policyVersion: string;
}

/** `GET /v1/decisions?image=…` on an in-process Signet. */
export async function ask(signet: TestSignet, image: string): Promise<Answer> {
  const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(image)}` });
  if (res.statusCode !== 200) {
    throw new Error(`GET /v1/decisions answered ${res.statusCode}: ${res.body}`);
  }
  return res.json<Answer>();
}

/** Waits until the answer for `image` has every field of `want` (compared as JSON). */
export function answered(signet: TestSignet, image: string, want: Partial<Answer>, timeoutMs?: number): Promise<Answer> {
  return eventually(
    async () => {
      const a = await ask(signet, image);
      return Object.entries(want).every(([k, v]) => JSON.stringify(a[k as keyof Answer]) === JSON.stringify(v)) ? a : undefined;
    },
    `${image} → ${JSON.stringify(want)}`,
    timeoutMs,
  );
}

/** The decision feed's counters on an in-process Signet's /metrics (see signet_decision_feed_events). */
export async function feedCounters(signet: TestSignet): Promise<FeedCounters> {
  return parseFeedCounters((await signet.app.inject({ method: 'GET', url: '/metrics' })).body);
}

export type FeedCounters = Record<'reload' | 'resume' | 'applied', number>;

/** signet_decision_feed_events in a /metrics text (NaN for a kind not there). */
export function parseFeedCounters(text: string): FeedCounters {
  const read = (kind: string) => Number(new RegExp(`^signet_decision_feed_events\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { reload: read('reload'), resume: read('resume'), applied: read('applied') };
}
