import type { Kysely } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { SignaturesLocation } from '../../registries-file.ts';
import type { DB } from '../schema.generated.ts';

/**
 * Notes (committed, before the images holding `digest` are looked up) that a signature of `digest`
 * arrived in a signatures repository, so an image job that read that repository just before can
 * tell it must read it again (`arrivedSince`).
 */
export async function noteArrival(db: Kysely<DB>, at: SignaturesLocation, digest: Digest): Promise<void> {
  await db
    .insertInto('signature_arrivals')
    .values({ registry: at.registry, repository: at.repository, digest })
    .onConflict((oc) => oc.columns(['registry', 'repository', 'digest']).doUpdateSet((eb) => ({ arrived_at: eb.fn('now') })))
    .execute();
}

/** Whether a signature of any of `digests` arrived in the signatures repository at or after `since`. */
export async function arrivedSince(db: Kysely<DB>, at: SignaturesLocation, digests: readonly Digest[], since: Date): Promise<boolean> {
  if (digests.length === 0) {
    return false;
  }
  const row = await db
    .selectFrom('signature_arrivals')
    .select('digest')
    .where('registry', '=', at.registry)
    .where('repository', '=', at.repository)
    .where('digest', 'in', [...digests])
    .where('arrived_at', '>=', since)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
