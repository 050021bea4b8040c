import { createHash } from 'node:crypto';
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';

// Hot statements as named prepared statements. node-postgres sends every query unnamed, so
// Postgres parses and plans it again each time: for Signet's short lookups (a decision miss joins
// four tables to read one row) planning is most of what Postgres does, ~0.45 ms of ~0.5 ms CPU
// (measured on the 1M seed). A statement Kysely has compiled before is sent with a name derived
// from its text, so each connection parses and plans it once and then only binds and executes it;
// Postgres plans it afresh per execution for the first five and keeps a generic plan only when
// that is no worse (plan_cache_mode auto). The same approach as pgx's and asyncpg's statement
// caches and JDBC's prepareThreshold.

/** A statement is prepared from the second time its text is seen: one-off statements never are. */
export const PREPARE_AFTER = 2;
/** At most this many named statements per connection (each keeps a plan in its Postgres backend); later ones go unnamed. */
export const MAX_PER_CONNECTION = 256;
/** Distinct statement texts remembered (with their use counts) across connections. */
const TEXTS_REMEMBERED = 4_096;

/** Data statements only; not DDL, transaction control or SET. */
const DATA_STATEMENT = /^\s*(select|insert|update|delete|with)\b/i;
/**
 * `*` in a select list or RETURNING: a column added by a migration while this process runs would
 * change the statement's result type, which a prepared statement refuses ("cached plan must not
 * change result type"). `count(*)` is fine.
 */
const STAR = /(^|[\s,.])\*(\s|,|$)/;

/**
 * A migration changed the type of a column a prepared statement returns: Postgres refuses that
 * statement on this connection from then on, so the connection is dropped (its statement fails
 * once, like any statement a migration races; the next connection prepares it afresh).
 */
function changedResultType(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e.code === '0A000' && typeof e.message === 'string' && e.message.includes('cached plan must not change result type');
}

interface Seen {
  /** The statement's name; null when it is never to be prepared. */
  readonly name: string | null;
  uses: number;
}

/** Which statements to send as named prepared statements, shared by a pool's connections. */
export class StatementNames {
  readonly #seen = new LRUCache<string, Seen>({ max: TEXTS_REMEMBERED });

  /** The name to send `text` under, or undefined to send it unnamed (not a data statement, or not yet seen twice). */
  nameFor(text: string): string | undefined {
    let seen = this.#seen.get(text);
    if (seen === undefined) {
      const eligible = DATA_STATEMENT.test(text) && !STAR.test(text);
      seen = { name: eligible ? `signet_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}` : null, uses: 0 };
      this.#seen.set(text, seen);
    }
    seen.uses++;
    return seen.name !== null && seen.uses >= PREPARE_AFTER ? seen.name : undefined;
  }
}

/** A pooled connection that sends statements seen before as named prepared statements. */
class PreparingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient;
  readonly #names: StatementNames;
  /** Names this connection has been sent (Postgres keeps them until the connection closes). */
  readonly #prepared = new Set<string>();
  /** A statement prepared here can no longer run: the connection is closed when released. */
  #discard = false;

  constructor(client: pg.PoolClient, names: StatementNames) {
    this.#client = client;
    this.#names = names;
  }

  query(...args: unknown[]): never {
    const [text, values] = args;
    if (typeof text === 'string') {
      const name = this.#names.nameFor(text);
      if (name !== undefined && (this.#prepared.has(name) || this.#prepared.size < MAX_PER_CONNECTION)) {
        this.#prepared.add(name);
        return this.#client.query({ name, text, values: values as unknown[] }).catch((err: unknown) => {
          if (changedResultType(err)) {
            this.#discard = true;
          }
          throw err;
        }) as never;
      }
    }
    return (this.#client.query as (...a: unknown[]) => unknown)(...args) as never;
  }

  /** The backend's pid, which Kysely reads to cancel a query. */
  get processID(): number | undefined {
    return (this.#client as { processID?: number }).processID;
  }

  release(destroy?: boolean): void {
    this.#client.release(destroy === true || this.#discard);
  }
}

/**
 * A pg.Pool as Kysely's pool, its connections preparing what they run repeatedly (see above). Off
 * (`SIGNET_PREPARED_STATEMENTS=off`) for poolers that cannot keep a named statement with the
 * connection that prepared it: PgBouncer before 1.21 in transaction mode.
 */
export class PreparingPool implements PostgresPool {
  readonly #pool: pg.Pool;
  readonly #names = new StatementNames();
  /** One wrapper per pg connection, so Kysely keeps its per-connection state too. */
  readonly #clients = new WeakMap<pg.PoolClient, PreparingClient>();

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  get options(): object {
    return this.#pool.options;
  }

  /** The client class Kysely opens a control connection with (to cancel a query). */
  get Client(): typeof pg.Client {
    return (this.#pool as unknown as { Client: typeof pg.Client }).Client;
  }

  async connect(): Promise<PostgresPoolClient> {
    const client = await this.#pool.connect();
    let wrapped = this.#clients.get(client);
    if (wrapped === undefined) {
      wrapped = new PreparingClient(client, this.#names);
      this.#clients.set(client, wrapped);
    }
    return wrapped;
  }

  end(): Promise<void> {
    return this.#pool.end();
  }
}
