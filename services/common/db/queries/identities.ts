import type { Kysely, Transaction } from 'kysely';
import type { SignerIdentity } from '../../domain/signature.ts';
import type { DB } from '../schema.generated.ts';

// Signers: an identity row exists only for one that verified (see migrations: identities).

export interface Identity extends SignerIdentity {
  readonly id: string;
  readonly firstSeenAt: Date;
}

const columns = ['id', 'kind', 'subject', 'issuer', 'first_seen_at as firstSeenAt'] as const;

/** Returns the identity's id, creating its row on first sight. */
export async function ensure(trx: Transaction<DB>, identity: SignerIdentity): Promise<string> {
  const inserted = await trx
    .insertInto('identities')
    .values({ kind: identity.kind, subject: identity.subject, issuer: identity.issuer })
    .onConflict((oc) => oc.columns(['subject', 'issuer']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted !== undefined) {
    return inserted.id;
  }
  const existing = await trx
    .selectFrom('identities')
    .select('id')
    .where('subject', '=', identity.subject)
    .where((eb) => (identity.issuer === null ? eb('issuer', 'is', null) : eb('issuer', '=', identity.issuer)))
    .executeTakeFirstOrThrow();
  return existing.id;
}

export function byIds(db: Kysely<DB>, ids: readonly string[]): Promise<Identity[]> {
  return db.selectFrom('identities').select(columns).where('id', 'in', ids).execute();
}

