// Named prepared statements (services/common/db/prepared.ts) against the real Postgres: which
// statements a connection prepares, that reused statements answer for their new parameters, that
// a migration adding a column while they are prepared breaks nothing, and the per-connection bound.
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../services/common/db/client.ts';
import { MAX_PER_CONNECTION, PREPARE_AFTER, StatementNames } from '../../services/common/db/prepared.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';

let test: TestDb;
/** One connection, so what one statement prepared is seen by the next. */
let one: Kysely<unknown>;
let unprepared: Kysely<unknown>;

beforeAll(async () => {
  test = await createTestDb();
  const log = createLogger({ logLevel: 'silent' });
  one = createDb(test.url, log, { max: 1 }) as unknown as Kysely<unknown>;
  unprepared = createDb(test.url, log, { max: 1, prepare: false }) as unknown as Kysely<unknown>;
  await sql`CREATE TABLE prep_t (id int PRIMARY KEY, name text NOT NULL)`.execute(one);
  await sql`INSERT INTO prep_t SELECT i, 'n' || i FROM generate_series(1, 50) i`.execute(one);
});

afterAll(async () => {
  await one?.destroy();
  await unprepared?.destroy();
  await test?.drop();
});

/** The statements the (single) connection of `db` holds prepared, and their text. */
async function preparedOn(db: Kysely<unknown>): Promise<string[]> {
  // A statement with `*` is never prepared, so asking does not add to the answer.
  const { rows } = await sql<{ statement: string }>`SELECT * FROM pg_prepared_statements`.execute(db);
  return rows.map((r) => r.statement);
}

const byId = (db: Kysely<unknown>, id: number) => sql<{ id: number; name: string }>`SELECT id, name FROM prep_t WHERE id = ${id}`.execute(db);

describe('named prepared statements', () => {
  it('prepares a data statement from its second use, and each use answers for its own parameters', async () => {
    expect(PREPARE_AFTER).toBe(2);
    expect((await byId(one, 1)).rows).toEqual([{ id: 1, name: 'n1' }]);
    expect((await preparedOn(one)).filter((s) => s.includes('prep_t'))).toEqual([]);
    for (const id of [2, 3, 4]) {
      expect((await byId(one, id)).rows).toEqual([{ id, name: `n${id}` }]);
    }
    expect((await preparedOn(one)).filter((s) => s.includes('prep_t'))).toEqual(['SELECT id, name FROM prep_t WHERE id = $1']);
  });

  it('never prepares with SIGNET_PREPARED_STATEMENTS=off', async () => {
    for (const id of [1, 2, 3]) {
      expect((await byId(unprepared, id)).rows).toEqual([{ id, name: `n${id}` }]);
    }
    expect((await preparedOn(unprepared)).filter((s) => s.includes('prep_t'))).toEqual([]);
  });

  it('a column added while a statement is prepared changes nothing for it; `select *` is never prepared', async () => {
    for (let i = 0; i < 3; i++) {
      await sql`SELECT * FROM prep_t WHERE id = ${5}`.execute(one);
    }
    await byId(one, 5);
    await sql`ALTER TABLE prep_t ADD COLUMN extra text NOT NULL DEFAULT 'x'`.execute(one);
    expect((await byId(one, 6)).rows).toEqual([{ id: 6, name: 'n6' }]);
    // Had it been prepared, Postgres would refuse it now: "cached plan must not change result type".
    expect((await sql`SELECT * FROM prep_t WHERE id = ${7}`.execute(one)).rows).toEqual([{ id: 7, name: 'n7', extra: 'x' }]);
    expect((await preparedOn(one)).some((s) => s.startsWith('SELECT *'))).toBe(false);
  });

  it('a column whose type a migration changes fails its prepared statement once, then the connection is replaced', async () => {
    const names = sql<{ name: string }>`SELECT name FROM prep_t WHERE id = ${8}`;
    await names.execute(one);
    await names.execute(one);
    await sql`ALTER TABLE prep_t ALTER COLUMN name TYPE varchar(100)`.execute(one);
    await expect(names.execute(one)).rejects.toThrow(/cached plan must not change result type/);
    expect((await names.execute(one)).rows).toEqual([{ name: 'n8' }]);
    expect((await names.execute(one)).rows).toEqual([{ name: 'n8' }]);
  });

  it('keeps at most MAX_PER_CONNECTION statements on a connection; later ones still run, unnamed', async () => {
    const distinct = MAX_PER_CONNECTION + 20;
    for (let i = 0; i < distinct; i++) {
      for (let use = 0; use < PREPARE_AFTER; use++) {
        const { rows } = await sql<{ v: number }>`SELECT ${sql.lit(i)}::int + ${1}::int AS v`.execute(one);
        expect(rows[0]!.v).toBe(i + 1);
      }
    }
    expect((await preparedOn(one)).length).toBe(MAX_PER_CONNECTION);
  });
});

describe('StatementNames', () => {
  it('names only data statements, the same text always the same name', () => {
    const names = new StatementNames();
    const text = 'select id from manifests where digest = $1';
    expect(names.nameFor(text)).toBeUndefined();
    const name = names.nameFor(text);
    expect(name).toMatch(/^signet_[A-Za-z0-9_-]{22}$/);
    expect(names.nameFor(text)).toBe(name);
    for (const never of ['begin', 'commit', 'create index x on t (a)', 'set local statement_timeout = 0', 'select * from t', 'select "t".* from t', 'insert into t values ($1) returning *']) {
      names.nameFor(never);
      expect(names.nameFor(never)).toBeUndefined();
    }
    const counted = 'select count(*) from t where a = $1';
    names.nameFor(counted);
    expect(names.nameFor(counted)).toMatch(/^signet_/);
  });
});
