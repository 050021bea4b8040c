import { createServer, type Server } from 'node:http';
// Deep imports on purpose: the package root loads nock, which patches node:http globally.
import { tufHandlers } from '@tufjs/repo-mock/dist/handler.js';
import { initializeTUFRepo } from '@tufjs/repo-mock/dist/repo.js';

/**
 * A real TUF repository served over HTTP on loopback: root, timestamp, snapshot and targets
 * metadata signed by fresh keys (tuf-js's repository builder), and the given targets. `rootJson`
 * is the initial root a client must be given to trust it.
 */
export interface TufRepoServer {
  readonly url: string;
  readonly rootJson: string;
  /** Requests answered so far. */
  readonly requests: () => number;
  close(): Promise<void>;
}

export async function startTufRepo(targets: { name: string; content: string }[]): Promise<TufRepoServer> {
  const repo = initializeTUFRepo(targets);
  const handlers = new Map(tufHandlers(repo, { metadataPathPrefix: '', targetPathPrefix: '/targets' }).map((h) => [h.path, h.fn]));
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const fn = handlers.get((req.url ?? '').split('?')[0]!);
    if (fn === undefined) {
      res.writeHead(404).end();
      return;
    }
    const out = fn();
    res.writeHead(out.statusCode, out.contentType === undefined ? {} : { 'content-type': out.contentType }).end(out.response);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    rootJson: JSON.stringify(repo.rootMeta.toJSON()),
    requests: () => requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
