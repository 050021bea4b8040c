import { type Kysely, sql } from 'kysely';
import type { DB } from '../schema.generated.ts';

/**
 * The primary's current WAL position (`pg_current_wal_lsn()`), taken after a write commits: a
 * replica that has replayed up to it holds that write. Ledger events carry it so API replicas
 * know how fresh a read replica must be for them (see DecisionTable's reader).
 */
export async function currentLsn(db: Kysely<DB>): Promise<string> {
  const { rows } = await sql<{ lsn: string }>`SELECT pg_current_wal_lsn()::text AS lsn`.execute(db);
  return rows[0]!.lsn;
}

/**
 * Whether the database has replayed WAL up to `lsn`: always true on a primary (no replay), and on
 * a streaming replica when `pg_last_wal_replay_lsn()` is at or past it.
 */
export async function replayedUpTo(db: Kysely<DB>, lsn: string): Promise<boolean> {
  const { rows } = await sql<{ fresh: boolean | null }>`SELECT pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn AS fresh`.execute(db);
  return rows[0]?.fresh ?? true;
}

/** `X/Y` WAL positions compared: <0, 0, >0. */
export function compareLsn(a: string, b: string): number {
  const value = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  const d = value(a) - value(b);
  return d === 0n ? 0 : d < 0n ? -1 : 1;
}
