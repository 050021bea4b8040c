import type { Queue } from 'bullmq';
import type { Digest } from '../../services/common/domain/digest.ts';
import type { TestDb } from './db.ts';
import { eventually } from './signet.ts';

/** The digest the ledger's tags table holds for `repository:tag`, or null. */
export async function ledgerTag(db: TestDb, repository: string, tag: string): Promise<Digest | null> {
  const row = await db.db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .select('t.digest')
    .where('r.name', '=', repository)
    .where('t.name', '=', tag)
    .executeTakeFirst();
  return row?.digest ?? null;
}

/** Every digest the tag history says `repository:tag` pointed at. */
export async function tagHistory(db: TestDb, repository: string, tag: string): Promise<Digest[]> {
  const rows = await db.db
    .selectFrom('tag_history as h')
    .innerJoin('repositories as r', 'r.id', 'h.repository_id')
    .select('h.digest')
    .where('r.name', '=', repository)
    .where('h.name', '=', tag)
    .orderBy('h.id')
    .execute();
  return rows.map((r) => r.digest);
}

/** Waits until each job has run at least once (finished, or failed an attempt and waits to retry). */
export async function ranOnce(queue: Queue, ids: readonly string[]): Promise<void> {
  await eventually(async () => {
    const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
    return jobs.every((j) => j === undefined || j.finishedOn !== undefined || j.attemptsMade > 0) ? true : undefined;
  }, `jobs ${ids.join(', ')} run`);
}

/** Waits until nothing is waiting, running or due to be retried in `queue`. */
export async function settled(queue: Queue, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0) ? true : undefined;
    },
    'the index queue idle',
    timeoutMs,
  );
}

/** How many jobs `queue` holds in any state. */
export async function jobCount(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

export async function deliveryCount(db: TestDb): Promise<number> {
  const r = await db.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}
