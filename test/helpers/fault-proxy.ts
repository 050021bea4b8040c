import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** What the proxy does with one request. */
export type Fault = 'pass' | '503' | '429' | 'hang';

/**
 * An HTTP proxy in front of a real registry that injects faults: 503s, 429s with `Retry-After: 1`,
 * and hangs (the request is held, never answered, until the client gives up). `decide` picks per
 * request; counts say what was injected.
 */
export interface FaultProxy {
  readonly url: string;
  readonly host: string;
  readonly injected: Record<Fault, number>;
  setDecider(decide: (req: IncomingMessage, n: number) => Fault): void;
  /**
   * Holds the registry's answer to a passed request until the promise `hold` returns settles (the
   * request itself reaches the registry at once): the client reads the registry as it was, later.
   */
  setHold(hold: (req: IncomingMessage) => Promise<void> | undefined): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const injected: Record<Fault, number> = { pass: 0, '503': 0, '429': 0, hang: 0 };
  let decide: (req: IncomingMessage, n: number) => Fault = () => 'pass';
  let hold: (req: IncomingMessage) => Promise<void> | undefined = () => undefined;
  let n = 0;
  const held = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const fault = decide(req, n++);
    injected[fault] += 1;
    if (fault === '503') {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    if (fault === '429') {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}');
      return;
    }
    if (fault === 'hang') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    forward(upstream, req, res, req.url, hold(req));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    injected,
    setDecider(d) {
      decide = d;
    },
    setHold(h) {
      hold = h;
    },
    async close() {
      for (const r of held) {
        r.destroy();
      }
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * Passes one request through to `upstream` as is (Host rewritten), streaming both ways; the answer
 * waits for `answerAfter` when given.
 */
export function forward(upstream: URL, req: IncomingMessage, res: ServerResponse, path = req.url, answerAfter?: Promise<void>): void {
  const forwarded = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host } },
    (up) => {
      const answer = () => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      };
      if (answerAfter === undefined) {
        answer();
      } else {
        up.pause();
        void answerAfter.then(answer);
      }
    },
  );
  forwarded.on('error', () => res.destroy());
  req.pipe(forwarded);
}
