// Statement templates (services/common/db/template.ts) against the real Postgres: built once,
// every call answers for its own arguments, and a builder that does anything with an argument
// but bind it is refused at the first call.
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../services/common/db/client.ts';
import { statementTemplate } from '../../services/common/db/template.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';

interface T {
  tmpl_t: { id: number; name: string; team: string };
}

let test: TestDb;
let db: Kysely<T>;

beforeAll(async () => {
  test = await createTestDb();
  db = createDb(test.url, createLogger({ logLevel: 'silent' })) as unknown as Kysely<T>;
  await sql`CREATE TABLE tmpl_t (id int PRIMARY KEY, name text NOT NULL, team text NOT NULL)`.execute(db);
  await sql`INSERT INTO tmpl_t SELECT i, 'n' || i, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END FROM generate_series(1, 40) i`.execute(db);
});

afterAll(async () => {
  await db?.destroy();
  await test?.drop();
});

describe('statement templates', () => {
  it('builds once, and each call answers for its own arguments beside the constants', async () => {
    let builds = 0;
    const byTeamBelow = statementTemplate((d: Kysely<T>, team: string, below: number) => {
      builds++;
      // 'n3' is a constant of the statement, kept as the builder gave it; `team` is bound twice.
      return d
        .selectFrom('tmpl_t')
        .select(['id', 'name'])
        .where('team', '=', team)
        .where('id', '<', below)
        .where('name', '!=', 'n3')
        .where((eb) => eb.or([eb('team', '=', team), eb('id', '=', 0)]))
        .orderBy('id');
    });
    const built = (team: string, below: number) =>
      db.selectFrom('tmpl_t').select(['id', 'name']).where('team', '=', team).where('id', '<', below).where('name', '!=', 'n3').orderBy('id').execute();
    for (const [team, below] of [['odd', 8], ['even', 11], ['odd', 2], ['none', 40]] as const) {
      expect(await byTeamBelow(db, team, below)).toEqual(await built(team, below));
    }
    // Calls in flight at once never see each other's values.
    const concurrent = await Promise.all(Array.from({ length: 20 }, (_, i) => byTeamBelow(db, i % 2 === 0 ? 'even' : 'odd', i + 2)));
    concurrent.forEach((rows, i) => expect(rows.map((r) => r.id)).toEqual(Array.from({ length: i + 1 }, (_, k) => k + 1).filter((id) => id % 2 === (i % 2 === 0 ? 0 : 1) && id !== 3)));
    expect(builds).toBe(1);
  });

  it('runs inside a transaction it is given', async () => {
    const named = statementTemplate((d: Kysely<T>, id: number) => d.selectFrom('tmpl_t').select('name').where('id', '=', id));
    const rollback = new Error('roll back');
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.updateTable('tmpl_t').set({ name: 'renamed' }).where('id', '=', 5).execute();
        expect(await named(trx, 5)).toEqual([{ name: 'renamed' }]);
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect(await named(db, 5)).toEqual([{ name: 'n5' }]);
  });

  it('refuses a builder that transforms, inlines or ignores an argument', async () => {
    const transformed = statementTemplate((d: Kysely<T>, prefix: string) => d.selectFrom('tmpl_t').select('id').where('name', 'like', `${prefix}%`));
    await expect(transformed(db, 'n1')).rejects.toThrow(/transformed an argument/);
    const inlined = statementTemplate((d: Kysely<T>, name: string) => d.selectFrom('tmpl_t').select('id').where('name', '=', sql.lit(name)));
    await expect(inlined(db, 'n1')).rejects.toThrow(/into its SQL text/);
    const ignored = statementTemplate((d: Kysely<T>, _name: string, id: number) => d.selectFrom('tmpl_t').select('id').where('id', '=', id));
    await expect(ignored(db, 'n1', 1)).rejects.toThrow(/does not bind its argument 1/);
  });
});
