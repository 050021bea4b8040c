import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy to inject outages between Signet and a real dependency (Postgres, Redis), or to put
 * a network's latency between a client and a local server (`oneWayDelayMs`: every chunk waits that
 * long in each direction, and a new connection one round trip, as a TCP handshake does).
 */
export interface TcpProxy {
  readonly port: number;
  /** Drops every open connection and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number, opts: { readonly oneWayDelayMs?: number } = {}): Promise<TcpProxy> {
  const delay = opts.oneWayDelayMs ?? 0;
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    if (delay === 0) {
      client.pipe(upstream).pipe(client);
      return;
    }
    // Each direction is a queue of chunks with the time each may go; they go in order.
    const handshake = Date.now() + 2 * delay;
    const later = (from: Socket, to: Socket) => {
      const queue: { at: number; chunk: Buffer | null }[] = [];
      const flush = () => {
        while (queue.length > 0 && queue[0]!.at <= Date.now()) {
          const { chunk } = queue.shift()!;
          if (chunk === null) {
            to.end();
          } else if (!to.destroyed) {
            to.write(chunk);
          }
        }
        if (queue.length > 0) {
          setTimeout(flush, queue[0]!.at - Date.now());
        }
      };
      const enqueue = (chunk: Buffer | null) => {
        queue.push({ at: Math.max(Date.now() + delay, handshake), chunk });
        if (queue.length === 1) {
          setTimeout(flush, queue[0]!.at - Date.now());
        }
      };
      from.on('data', (chunk: Buffer) => enqueue(chunk));
      from.on('end', () => enqueue(null));
    };
    later(client, upstream);
    later(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr !== null ? addr.port : 0,
    cut() {
      open = false;
      for (const s of sockets) {
        s.destroy();
      }
    },
    restore() {
      open = true;
    },
    async close() {
      open = false;
      for (const s of sockets) {
        s.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A TCP proxy in front of the test Postgres server, and `dbUrl` rewritten to go through it. */
export async function startPostgresProxy(pgServer: string, dbUrl: string): Promise<{ proxy: TcpProxy; url: string }> {
  const pg = new URL(pgServer);
  const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
  const url = new URL(dbUrl);
  url.port = String(proxy.port);
  return { proxy, url: url.toString() };
}
