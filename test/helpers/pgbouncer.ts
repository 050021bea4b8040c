/**
 * Debian's PgBouncer in transaction pooling mode in front of the test Postgres, on a free loopback
 * port, configured in a temporary directory removed at stop. It runs as `postgres` when the tests
 * run as root (PgBouncer refuses root).
 */
import { spawn } from 'node:child_process';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { PG_SERVER } from './db.ts';
import { freePort } from './net.ts';
import { eventually } from './signet.ts';

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface Bouncer {
  /** `postgres://postgres@127.0.0.1:<port>`: every database of the test server, pooled per transaction. */
  readonly url: string;
  /** Transactions PgBouncer passed to the server for `database` (its admin console's SHOW STATS). */
  transactions(database: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startPgBouncer(): Promise<Bouncer> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-pgbouncer-'));
  const server = new URL(PG_SERVER);
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  await writeFile(join(dir, 'userlist.txt'), '"postgres" ""\n');
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      // Signet sets statement_timeout per connection at start-up; PgBouncer cannot forward it
      // (a pooled server connection serves many clients): set it on the role instead (README).
      'ignore_startup_parameters = statement_timeout',
      'admin_users = postgres',
      'max_client_conn = 200',
      'default_pool_size = 20',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const root = process.getuid?.() === 0;
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const f of [dir, ini, join(dir, 'userlist.txt')]) {
      await chown(f, uid, gid);
    }
  }
  const child = root ? spawn('runuser', ['-u', 'postgres', '--', PGBOUNCER, ini], { stdio: 'ignore' }) : spawn(PGBOUNCER, [ini], { stdio: 'ignore' });
  const url = `postgres://postgres@127.0.0.1:${port}`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    // The admin console speaks the simple query protocol only.
    const c = new pg.Client({ connectionString: `${url}/pgbouncer` });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await eventually(() => admin((c) => c.query('SHOW VERSION')).then(() => true), `pgbouncer on ${port}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    transactions: (database) =>
      admin(async (c) => {
        const { rows } = await c.query<{ database: string; total_xact_count: string }>('SHOW STATS');
        return Number(rows.find((r) => r.database === database)?.total_xact_count ?? 0);
      }),
    stop,
  };
}
