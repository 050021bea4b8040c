import { createServer, connect, type Server, type Socket } from 'node:net';

/** A TCP proxy to inject outages between Signet and a real dependency (Postgres, Redis). */
export interface TcpProxy {
  readonly port: number;
  /** Drops every open connection and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
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
    client.pipe(upstream).pipe(client);
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
