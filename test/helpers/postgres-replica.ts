/**
 * A Postgres primary and its streaming replica for the read-replica tests: a second cluster made
 * with Debian's `initdb`/`pg_ctl` (trust auth, loopback only), copied with `pg_basebackup -R`, each
 * in a temporary directory on a free port, removed at stop. Run as `postgres` when the tests run as
 * root (initdb refuses root).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.ts';

const exec = promisify(execFile);

/** The newest PostgreSQL's binaries Debian installed. */
function pgBin(): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) {
    throw new Error('no PostgreSQL under /usr/lib/postgresql');
  }
  return join('/usr/lib/postgresql', versions[0]!, 'bin');
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL tool, as `postgres` when we are root. */
async function tool(name: string, args: readonly string[]): Promise<void> {
  const bin = join(pgBin(), name);
  await (asRoot ? exec('runuser', ['-u', 'postgres', '--', bin, ...args]) : exec(bin, args));
}

export interface PostgresPair {
  /** `postgres://postgres@127.0.0.1:<port>` of the primary and of the replica (no database). */
  readonly primary: string;
  readonly replica: string;
  /** Stops replaying WAL on the replica (it keeps answering, older and older), or resumes. */
  pauseReplay(paused: boolean): Promise<void>;
  stop(): Promise<void>;
}

async function query(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${url}/postgres` });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function startPostgresPair(): Promise<PostgresPair> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-pg-pair-'));
  if (asRoot) {
    await chown(dir, Number((await exec('id', ['-u', 'postgres'])).stdout.trim()), Number((await exec('id', ['-g', 'postgres'])).stdout.trim()));
  }
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const primaryDir = join(dir, 'primary');
  const replicaDir = join(dir, 'replica');
  const started: string[] = [];
  const stop = async () => {
    for (const d of started.reverse()) {
      await tool('pg_ctl', ['-D', d, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const options = (port: number) => `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c shared_buffers=16MB -c max_connections=40 -c wal_level=replica`;
  try {
    await tool('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync']);
    await tool('pg_ctl', ['-D', primaryDir, '-o', options(primaryPort), '-l', join(dir, 'primary.log'), '-w', 'start']);
    started.push(primaryDir);
    await tool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replicaDir, '-R', '--checkpoint=fast', '--no-sync']);
    await tool('pg_ctl', ['-D', replicaDir, '-o', options(replicaPort), '-l', join(dir, 'replica.log'), '-w', 'start']);
    started.push(replicaDir);
  } catch (err) {
    await stop();
    throw err;
  }
  const primary = `postgres://postgres@127.0.0.1:${primaryPort}`;
  const replica = `postgres://postgres@127.0.0.1:${replicaPort}`;
  return {
    primary,
    replica,
    pauseReplay: (paused) => query(replica, paused ? 'SELECT pg_wal_replay_pause()' : 'SELECT pg_wal_replay_resume()'),
    stop,
  };
}
