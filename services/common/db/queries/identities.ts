import { sql, type Kysely, type Transaction } from 'kysely';
import type { SignerIdentity } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';
import { statementTemplate } from '../template.ts';
import { bytewise, page, prefixPattern, signedAt, type Page } from './fragments.ts';

// Signers: an identity row exists only for one that verified (see migrations: identities).

export interface Identity extends SignerIdentity {
  readonly id: string;
  readonly firstSeenAt: Date;
}

/** Signing times and image count of one identity within one scope (an image, a repository, everything). */
export interface SigningStats {
  readonly identityId: string;
  readonly firstSignedAt: Date;
  readonly lastSignedAt: Date;
  readonly imageCount: number;
}

const columns = ['id', 'kind', 'subject', 'issuer', 'first_seen_at as firstSeenAt'] as const;

/** An identity's id by subject and issuer (null: none), if it is known; each shape built once. */
const idWithIssuer = statementTemplate((db: Kysely<DB>, subject: string, issuer: string) => db.selectFrom('identities').select('id').where('subject', '=', subject).where('issuer', '=', issuer));
const idWithoutIssuer = statementTemplate((db: Kysely<DB>, subject: string) => db.selectFrom('identities').select('id').where('subject', '=', subject).where('issuer', 'is', null));

function knownId(db: Kysely<DB>, identity: SignerIdentity) {
  return identity.issuer === null ? idWithoutIssuer(db, identity.subject) : idWithIssuer(db, identity.subject, identity.issuer);
}

/**
 * Returns the identity's id, creating its row on first sight. An identity seen before (all its
 * signatures but the first) costs one statement, and burns no id of the sequence.
 */
export async function ensure(trx: Transaction<DB>, identity: SignerIdentity): Promise<string> {
  const [known] = await knownId(trx, identity);
  if (known !== undefined) {
    return known.id;
  }
  const inserted = await trx
    .insertInto('identities')
    .values({ kind: identity.kind, subject: identity.subject, issuer: identity.issuer })
    .onConflict((oc) => oc.columns(['subject', 'issuer']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted !== undefined) {
    return inserted.id;
  }
  const [existing] = await knownId(trx, identity);
  if (existing === undefined) {
    throw new Error(`identity ${identity.subject} (${identity.issuer ?? 'no issuer'}) neither inserted nor found`);
  }
  return existing.id;
}

export function byIds(db: Kysely<DB>, ids: readonly string[]): Promise<Identity[]> {
  return db.selectFrom('identities').select(columns).where('id', 'in', ids).execute();
}

/** Every identity with `subject` (one per issuer), or the one with `issuer` too; at most 100. */
export function bySubject(db: Kysely<DB>, subject: string, issuer?: string | null): Promise<Identity[]> {
  let q = db.selectFrom('identities').select(columns).where('subject', '=', subject);
  if (issuer !== undefined && issuer !== null) {
    q = q.where('issuer', '=', issuer);
  }
  return q.orderBy('id').limit(100).execute();
}

/** Earliest and latest verified (and not withdrawn) signature of each identity, anywhere. */
export async function signingStats(db: Kysely<DB>, identityIds: readonly string[]): Promise<SigningStats[]> {
  const rows = await db
    .selectFrom('signatures as s')
    .select('s.identity_id')
    .select((eb) => [eb.fn.min(signedAt).as('first'), eb.fn.max(signedAt).as('last'), eb.fn.count<string>('s.manifest_id').distinct().as('images')])
    .where('s.identity_id', 'in', identityIds)
    .where('s.withdrawn_at', 'is', null)
    .groupBy('s.identity_id')
    .execute();
  return rows.map((r) => ({ identityId: r.identity_id ?? '', firstSignedAt: r.first, lastSignedAt: r.last, imageCount: Number(r.images) }));
}

/** Which identities a list holds: those with exactly this subject, or whose subject starts with a prefix. */
export type IdentityMatch = { readonly subject: string } | { readonly prefix: string };

function matching(db: Kysely<DB>, match: IdentityMatch) {
  const q = db.selectFrom('identities');
  return 'subject' in match ? q.where('subject', '=', match.subject) : q.where(bytewise('subject'), 'like', prefixPattern(match.prefix));
}

/** Identities by subject in byte order (then id), a keyset page after the identity `after`. */
export async function pageIdentities(db: Kysely<DB>, match: IdentityMatch, first: number, after: string | null): Promise<Page<Identity>> {
  let q = matching(db, match).select(columns).orderBy(bytewise('subject')).orderBy('id').limit(first + 1);
  if (after !== null) {
    q = q.where(sql<boolean>`(subject COLLATE "C", id) > (SELECT subject COLLATE "C", id FROM identities WHERE id = ${after})`);
  }
  return page(await q.execute(), first);
}

export async function countIdentities(db: Kysely<DB>, match: IdentityMatch): Promise<number> {
  const row = await matching(db, match).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
