import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../common/logger.ts';

/** Alerts waiting to be sent at most; more are dropped (and counted). */
const MAX_PENDING = 100;
/** The same break-glass (namespace, user, images) is alerted once in this window: a Deployment's ReplicaSet and Pods repeat it. */
const REPEAT_WINDOW_MS = 10 * 60_000;
const SEND_TIMEOUT_MS = 5_000;

/** One honoured break-glass, as alerted. */
export interface BreakGlassUse {
  readonly at: Date;
  readonly namespace: string | null;
  readonly kind: string;
  readonly name: string | null;
  readonly user: string | null;
  readonly reason: string;
  /** The images break-glass admitted although the policy denies them, each with why. */
  readonly images: readonly { readonly image: string; readonly reason: string }[];
}

/** A Slack-compatible message (as the ownership-drift alerts), with the use itself under `breakGlass`. */
export function breakGlassMessage(use: BreakGlassUse): Record<string, unknown> {
  const where = `${use.namespace ?? '(cluster)'}/${use.kind}${use.name === null ? '' : `/${use.name}`}`;
  const text = `:rotating_light: Break-glass used by ${use.user ?? '(unknown user)'} on ${where}: ${use.images.length} image(s) admitted that the policy denies. Reason given: ${use.reason}`;
  return {
    text,
    attachments: [
      {
        color: 'danger',
        fallback: text,
        fields: [
          { title: 'User', value: use.user ?? '(unknown)', short: true },
          { title: 'Object', value: where, short: true },
          { title: 'Images', value: use.images.map((i) => `${i.image}: ${i.reason}`).join('\n'), short: false },
          { title: 'At', value: use.at.toISOString(), short: true },
        ],
      },
    ],
    breakGlass: { ...use, at: use.at.toISOString() },
  };
}

/**
 * Sends break-glass alerts to SIGNET_ALERT_WEBHOOK_URL off the admission path: `alert` only
 * queues (bounded), one sender posts in order. What cannot be sent (the endpoint fails, or the
 * queue is full) is logged and counted in `signet_break_glass_alert_failures_total`; the
 * admission record keeps every use whatever happens to the alert.
 */
export class BreakGlassAlerts {
  readonly #url: string;
  readonly #log: Logger;
  readonly #failures: Counter<'cause'>;
  readonly #pending: BreakGlassUse[] = [];
  readonly #recent = new Map<string, number>();
  #sending: Promise<void> | null = null;

  constructor(url: string, log: Logger, registry: Registry) {
    this.#url = url;
    this.#log = log;
    this.#failures = new Counter({
      name: 'signet_break_glass_alert_failures_total',
      help: 'Break-glass alerts that could not be sent to SIGNET_ALERT_WEBHOOK_URL, by cause (http: the endpoint answered an error; network: no answer; dropped: too many waiting).',
      labelNames: ['cause'],
      registers: [registry],
    });
  }

  /** Queues an alert for `use`; never blocks, never throws. */
  alert(use: BreakGlassUse): void {
    const key = JSON.stringify([use.namespace, use.user, use.images.map((i) => i.image).sort()]);
    const now = use.at.getTime();
    if ((this.#recent.get(key) ?? -Infinity) > now - REPEAT_WINDOW_MS) {
      return;
    }
    if (this.#recent.size >= MAX_PENDING * 10) {
      this.#recent.clear();
    }
    this.#recent.set(key, now);
    if (this.#pending.length >= MAX_PENDING) {
      this.#failures.inc({ cause: 'dropped' });
      this.#log.warn({ namespace: use.namespace, user: use.user }, 'break-glass alert dropped: too many waiting to be sent');
      return;
    }
    this.#pending.push(use);
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = null;
    });
  }

  /** Resolves when every queued alert has been tried (shutdown, tests). */
  async flush(): Promise<void> {
    while (this.#sending !== null) {
      await this.#sending;
    }
  }

  async #drain(): Promise<void> {
    for (let use = this.#pending.shift(); use !== undefined; use = this.#pending.shift()) {
      try {
        const res = await fetch(this.#url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(breakGlassMessage(use)),
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
          redirect: 'error',
        });
        await res.body?.cancel();
        if (!res.ok) {
          this.#failures.inc({ cause: 'http' });
          this.#log.warn({ status: res.status, namespace: use.namespace, user: use.user }, 'break-glass alert refused by the alert webhook');
        }
      } catch (err) {
        this.#failures.inc({ cause: 'network' });
        this.#log.warn({ err, namespace: use.namespace, user: use.user }, 'break-glass alert could not be sent');
      }
    }
  }
}
