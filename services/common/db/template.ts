import type { Compilable, CompiledQuery, Kysely } from 'kysely';

// A statement of fixed shape, built and compiled by Kysely once. Kysely builds a query as a tree
// of frozen operation nodes and compiles that tree to SQL on every execution: for Signet's hot
// reads that costs Node more CPU than Postgres spends running them (the image-with-signatures
// join of `image(ref)`: about a third of the whole GraphQL request's CPU, profiled). A statement
// whose shape never changes needs that once; each later call only puts its values in place.
//
// `build` is called once, with a marker in place of each argument, and the compiled statement
// keeps where each marker went among its parameters. So `build` must use its arguments only as
// bound values (where Kysely writes `$n`): not inline them, transform them (a LIKE pattern made
// from one) or branch on them (one template per shape). A marker that does not come back whole
// and unchanged as a parameter, or that ends up in the SQL text, is an error at the first call.
// Whatever else `build` binds is kept from that first call as a constant: a value that changes
// between calls (a `new Date()`, a setting) must be an argument too.

const MARK = '\u0000signet-template-argument:';

const marker = (i: number) => `${MARK}${i}\u0000`;

interface Template<O> {
  readonly query: CompiledQuery<O>;
  /** For each parameter of the compiled statement: the argument it takes, or null for a constant. */
  readonly slots: readonly (number | null)[];
}

function compileTemplate<D, O>(db: Kysely<D>, build: (db: Kysely<D>, ...args: never[]) => Compilable<O>, arity: number): Template<O> {
  const markers = Array.from({ length: arity }, (_, i) => marker(i));
  const query = build(db, ...(markers as never[])).compile();
  if (query.sql.includes(MARK)) {
    throw new Error(`a statement template put an argument into its SQL text instead of binding it: ${query.sql.slice(0, 200)}`);
  }
  const slots = query.parameters.map((p) => {
    if (typeof p !== 'string' || !p.includes(MARK)) {
      return null;
    }
    const i = markers.indexOf(p);
    if (i === -1) {
      throw new Error('a statement template transformed an argument before binding it; build it per call instead');
    }
    return i;
  });
  const unbound = markers.findIndex((_, i) => !slots.includes(i));
  if (unbound !== -1) {
    throw new Error(`a statement template does not bind its argument ${unbound + 1}`);
  }
  return { query, slots };
}

/**
 * A statement Kysely builds and compiles at its first call only (see above); each call runs it
 * with its own arguments in place and resolves to its rows. `build(db, ...args)` is written as
 * the query would be, using each argument only as a bound value.
 */
export function statementTemplate<D, A extends unknown[], O>(build: (db: Kysely<D>, ...args: A) => Compilable<O>): (db: Kysely<D>, ...args: A) => Promise<O[]> {
  let template: Template<O> | null = null;
  const arity = build.length - 1;
  if (arity < 0) {
    throw new Error('a statement template takes the database and its arguments, none with a default');
  }
  return async (db, ...args) => {
    template ??= compileTemplate(db, build as unknown as (db: Kysely<D>, ...args: never[]) => Compilable<O>, arity);
    const { query, slots } = template;
    const parameters = slots.map((slot, i) => (slot === null ? query.parameters[i] : args[slot]));
    return (await db.executeQuery<O>({ ...query, parameters })).rows;
  };
}
