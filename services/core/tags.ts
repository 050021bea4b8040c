import type { Kysely } from 'kysely';
import * as tags from '../common/db/queries/tags.ts';
import * as wal from '../common/db/queries/wal.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { Digest } from '../common/domain/digest.ts';
import type { Announce } from '../common/events.ts';

/** What a registry answered for a tag, and when. */
export interface TagObservation {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: Digest;
  /** When the registry answered (taken right after its answer, before anything slower). */
  readonly observedAt: Date;
}

/**
 * Records a tag as the registry itself answered it — a resolved webhook tag, a crawl, an image
 * learnt on first sight — and tells API replicas when it moved. Tags are written only from here:
 * no sender's word is recorded as a tag. The later observation wins (see `tags.recordPush`).
 */
export async function recordObservedTag(deps: { readonly db: Kysely<DB>; readonly announce?: Announce | undefined }, o: TagObservation) {
  const change = await tags.record(deps.db, o.registry, o.repository, o.tag, o.digest, o.observedAt);
  if ((change === 'created' || change === 'moved') && deps.announce !== undefined) {
    // Announcing never fails the caller: without its WAL position the event still moves the tag.
    const lsn = await wal.currentLsn(deps.db).catch(() => undefined);
    await deps.announce([{ type: 'tag', registry: o.registry, repository: o.repository, tag: o.tag, digest: o.digest, at: o.observedAt.toISOString(), ...(lsn === undefined ? {} : { lsn }) }]);
  }
  return change;
}
