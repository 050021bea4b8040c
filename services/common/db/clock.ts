import { sql, type Kysely } from 'kysely';
import type { DB } from './schema.generated.ts';

/**
 * The database's clock. Times that jobs on different machines compare (when a discovery started,
 * when a signature arrived) are read from it, so no skew between workers can reorder them.
 */
export async function databaseNow(db: Kysely<DB>): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(db);
  return rows[0]!.now;
}
