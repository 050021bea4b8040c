/**
 * Extra Redis servers for the distributed-engine tests: a 3-master Redis Cluster, and a master with
 * a replica watched by Sentinel (and a lone server, for benchmarks) — Debian's `redis-server` (and `redis-cli --cluster create`), each
 * in a temporary directory on a free loopback port, removed at stop.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './net.ts';
import { eventually } from './signet.ts';

const run = promisify(execFile);
export const REDIS_SERVER = '/usr/bin/redis-server';

interface Server {
  readonly port: number;
  readonly process: ChildProcess;
}

/** One redis-server on 127.0.0.1, no persistence, answering PING when this resolves. */
async function startServer(dir: string, name: string, args: readonly string[], configFile?: string): Promise<Server> {
  const port = await freePort();
  const argv = [...(configFile === undefined ? [] : [configFile]), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', join(dir, `${name}.log`), ...args];
  const child = spawn(REDIS_SERVER, argv, { stdio: 'ignore' });
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await eventually(async () => {
      if (child.exitCode !== null) {
        throw new Error(`redis-server ${name} exited with ${child.exitCode}`);
      }
      if (redis.status !== 'ready') {
        await redis.connect().catch(() => undefined);
      }
      return (await redis.ping()) === 'PONG' ? true : undefined;
    }, `redis-server ${name} on ${port}`);
  } finally {
    redis.disconnect();
  }
  return { port, process: child };
}

async function stopAll(servers: readonly Server[], dir: string): Promise<void> {
  await Promise.all(
    servers.map(async (s) => {
      if (s.process.exitCode === null && s.process.signalCode === null) {
        const exited = new Promise((r) => s.process.once('exit', r));
        s.process.kill('SIGKILL');
        await exited;
      }
    }),
  );
  await rm(dir, { recursive: true, force: true });
}

/** One plain redis-server, no persistence, on a free loopback port: for a run that wants Redis's counters to itself. */
export async function startRedisServer(): Promise<{ readonly url: string; readonly pid: number; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-redis-'));
  const server = await startServer(dir, 'redis', []);
  return { url: `redis://127.0.0.1:${server.port}`, pid: server.process.pid!, stop: () => stopAll([server], dir) };
}

export interface RedisCluster {
  /** `127.0.0.1:port` of every master. */
  readonly nodes: readonly string[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, every slot assigned and `cluster_state:ok` on each. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-redis-cluster-'));
  const servers: Server[] = [];
  try {
    for (const i of [0, 1, 2]) {
      servers.push(await startServer(dir, `node${i}`, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${i}.conf`), '--cluster-node-timeout', '2000']));
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    for (const s of servers) {
      const redis = new Redis(s.port, '127.0.0.1');
      try {
        await eventually(async () => ((await redis.cluster('INFO')).includes('cluster_state:ok') ? true : undefined), 'cluster_state:ok');
      } finally {
        redis.disconnect();
      }
    }
    return { nodes, stop: () => stopAll(servers, dir) };
  } catch (err) {
    await stopAll(servers, dir);
    throw err;
  }
}

export interface RedisSentinel {
  /** `127.0.0.1:port` of the sentinel. */
  readonly sentinel: string;
  readonly name: string;
  /** The port of the current master, as the sentinel says. */
  master(): Promise<number>;
  /** Forces a failover to the replica and waits for the sentinel to name it and for it to take writes. */
  failover(): Promise<number>;
  stop(): Promise<void>;
}

/** A master, one replica and one sentinel (quorum 1) watching them as `signet`. */
export async function startRedisSentinel(): Promise<RedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-redis-sentinel-'));
  const servers: Server[] = [];
  const name = 'signet';
  try {
    const master = await startServer(dir, 'master', []);
    servers.push(master);
    servers.push(await startServer(dir, 'replica', ['--replicaof', '127.0.0.1', String(master.port)]));
    const conf = join(dir, 'sentinel.conf');
    await writeFile(
      conf,
      [`sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 10000`, ''].join('\n'),
    );
    const sentinel = await startServer(dir, 'sentinel', ['--sentinel'], conf);
    servers.push(sentinel);
    const ask = new Redis(sentinel.port, '127.0.0.1');
    const current = async () => {
      const addr = (await ask.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null;
      return addr === null ? 0 : Number(addr[1]);
    };
    // The sentinel must know the replica before it can fail over to it.
    await eventually(async () => (((await ask.call('SENTINEL', 'replicas', name)) as unknown[]).length > 0 ? true : undefined), 'the sentinel to see the replica');
    return {
      sentinel: `127.0.0.1:${sentinel.port}`,
      name,
      master: current,
      async failover() {
        const before = await current();
        await ask.call('SENTINEL', 'failover', name);
        const after = await eventually(async () => {
          const port = await current();
          return port !== before ? port : undefined;
        }, 'the sentinel to name a new master');
        const promoted = new Redis(after, '127.0.0.1');
        try {
          await eventually(async () => ((await promoted.info('replication')).includes('role:master') ? true : undefined), 'the promoted replica to be a master');
        } finally {
          promoted.disconnect();
        }
        return after;
      },
      async stop() {
        ask.disconnect();
        await stopAll(servers, dir);
      },
    };
  } catch (err) {
    await stopAll(servers, dir);
    throw err;
  }
}
