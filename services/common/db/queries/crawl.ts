import type { Kysely } from 'kysely';
import type { Digest } from '../../domain/digest.ts';
import type { DB } from '../schema.generated.ts';
import * as repositories from './repositories.ts';

/** What the ledger holds for one repository, for a crawl to compare the registry against. */
export interface RepositoryLedger {
  /** Manifest digest → deleted (marked by a delete event) or not. */
  readonly manifests: ReadonlyMap<Digest, { readonly deleted: boolean }>;
  /** Tag → the digest it points at now. */
  readonly tags: ReadonlyMap<string, Digest>;
  /** Digests of the signature manifests (`.sig`, referrers) whose signatures are recorded (and not withdrawn). */
  readonly signatureSources: ReadonlySet<Digest>;
  /** Each image (not deleted) → the signature manifests its current signatures came from. */
  readonly currentSources: ReadonlyMap<Digest, ReadonlySet<Digest>>;
}

/** One read of a repository's manifests, tags and signature sources. */
export async function getRepositoryLedger(db: Kysely<DB>, registry: string, repository: string): Promise<RepositoryLedger> {
  const repo = repositories.idsIn(db, registry, repository);
  const [manifests, tags, sources] = await Promise.all([
    db.selectFrom('manifests').select(['digest', 'deleted_at']).where('repository_id', 'in', repo).execute(),
    db.selectFrom('tags').select(['name', 'digest']).where('repository_id', 'in', repo).execute(),
    db
      .selectFrom('signatures as s')
      .innerJoin('manifests as m', 'm.id', 's.manifest_id')
      .select(['m.digest', 'm.deleted_at', 's.source_digest'])
      .distinct()
      .where('m.repository_id', 'in', repo)
      .where('s.withdrawn_at', 'is', null)
      .execute(),
  ]);
  const currentSources = new Map<Digest, Set<Digest>>();
  for (const s of sources.filter((r) => r.deleted_at === null)) {
    currentSources.set(s.digest, (currentSources.get(s.digest) ?? new Set()).add(s.source_digest));
  }
  return {
    manifests: new Map(manifests.map((m) => [m.digest, { deleted: m.deleted_at !== null }])),
    tags: new Map(tags.map((t) => [t.name, t.digest])),
    signatureSources: new Set(sources.map((s) => s.source_digest)),
    currentSources,
  };
}

/** The last catalog repository an unfinished crawl of `registry` completed; undefined when none is unfinished. */
export async function getCursor(db: Kysely<DB>, registry: string): Promise<{ lastRepository: string | null } | undefined> {
  const row = await db.selectFrom('crawl_cursors').select('last_repository').where('registry', '=', registry).executeTakeFirst();
  return row === undefined ? undefined : { lastRepository: row.last_repository };
}

/** Records that a crawl of `registry` finished `lastRepository` (null: started, nothing finished yet). */
export async function saveCursor(db: Kysely<DB>, registry: string, lastRepository: string | null): Promise<void> {
  await db
    .insertInto('crawl_cursors')
    .values({ registry, last_repository: lastRepository })
    .onConflict((oc) => oc.column('registry').doUpdateSet({ last_repository: lastRepository, updated_at: new Date() }))
    .execute();
}

/** A finished crawl leaves no cursor: the next one starts from the top. */
export async function clearCursor(db: Kysely<DB>, registry: string): Promise<void> {
  await db.deleteFrom('crawl_cursors').where('registry', '=', registry).execute();
}
