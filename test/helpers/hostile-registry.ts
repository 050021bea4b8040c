import { createServer, type Server, type ServerResponse } from 'node:http';

/**
 * How one listing pages: `end` as a registry should (a `Link: rel="next"` while entries remain);
 * `new-cursor` never ends, each page linking to a next one with a cursor never served before;
 * `repeat-cursor` never ends either, linking back to pages it has already served.
 */
export type Paging = 'end' | 'new-cursor' | 'repeat-cursor';

export interface HostileBehaviour {
  /** What `_catalog` lists, in order, before its paging takes over. */
  readonly repositories: readonly string[];
  readonly catalog: Paging;
  /** Each repository's tag list paging; `missing` answers 404. */
  readonly tags: (repository: string) => Paging | 'missing';
  /** Tags on each page of a `new-cursor` tag list (default 10). */
  readonly tagsPerPage?: number;
}

/**
 * An in-process registry whose catalog and tag lists page as told, for the crawl's bounds to be
 * tried against (a real registry cannot be made to link to next pages forever). It lists only:
 * every manifest is unknown (404), and so is the referrers API, as on distribution 2.x.
 */
export interface HostileRegistry {
  readonly host: string;
  readonly url: string;
  /** Requests answered: all, the catalog's, and each repository's tag list's. */
  readonly counts: { total: number; catalog: number; manifests: number; tags: Map<string, number> };
  /** The catalog requests' paths, in order. */
  readonly catalogPaths: string[];
  behave(b: HostileBehaviour): void;
  close(): Promise<void>;
}

const TAGS = /^\/v2\/(.+)\/tags\/list$/;

export async function startHostileRegistry(initial: HostileBehaviour): Promise<HostileRegistry> {
  let behaviour = initial;
  const counts = { total: 0, catalog: 0, manifests: 0, tags: new Map<string, number>() };
  const catalogPaths: string[] = [];
  let fresh = 0;
  const server: Server = createServer((req, res) => {
    counts.total++;
    const url = new URL(req.url ?? '/', 'http://hostile');
    const n = Math.max(1, Number(url.searchParams.get('n') ?? 100) || 100);
    const last = url.searchParams.get('last');
    if (url.pathname === '/v2/_catalog') {
      counts.catalog++;
      catalogPaths.push(req.url ?? '');
      const rest = behaviour.repositories.filter((r) => last === null || r > last);
      const names = rest.slice(0, n);
      let next: string | null = null;
      if (behaviour.catalog === 'repeat-cursor') {
        next = req.url ?? null;
      } else if (rest.length > n) {
        next = `/v2/_catalog?n=${n}&last=${encodeURIComponent(names.at(-1)!)}`;
      } else if (behaviour.catalog === 'new-cursor') {
        // '~' sorts after every repository name: these pages are empty, and never the last.
        next = `/v2/_catalog?n=${n}&last=${encodeURIComponent(`~${fresh++}`)}`;
      }
      json(res, { repositories: names }, next);
      return;
    }
    const tags = TAGS.exec(url.pathname);
    if (tags !== null) {
      const repository = tags[1]!;
      counts.tags.set(repository, (counts.tags.get(repository) ?? 0) + 1);
      const paging = behaviour.repositories.includes(repository) ? behaviour.tags(repository) : 'missing';
      const base = `/v2/${repository}/tags/list?n=${n}`;
      if (paging === 'missing') {
        unknown(res, 'NAME_UNKNOWN');
      } else if (paging === 'end') {
        json(res, { name: repository, tags: ['v1'] }, null);
      } else if (paging === 'new-cursor') {
        const page = last === null ? 0 : Number(/^p(\d+)-/.exec(last)?.[1] ?? -1) + 1;
        const names = Array.from({ length: behaviour.tagsPerPage ?? 10 }, (_, i) => `p${page}-${i}`);
        json(res, { name: repository, tags: names }, `${base}&last=${names.at(-1)}`);
      } else {
        // A cycle: the first page → a → b → a → …
        json(res, { name: repository, tags: [`v-${last ?? 'first'}`] }, `${base}&last=${last === 'a' ? 'b' : 'a'}`);
      }
      return;
    }
    if (/^\/v2\/.+\/manifests\//.test(url.pathname)) {
      counts.manifests++;
    }
    unknown(res, 'MANIFEST_UNKNOWN');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    counts,
    catalogPaths,
    behave(b) {
      behaviour = b;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function json(res: ServerResponse, body: unknown, next: string | null): void {
  res.writeHead(200, { 'content-type': 'application/json', ...(next === null ? {} : { link: `<${next}>; rel="next"` }) });
  res.end(JSON.stringify(body));
}

function unknown(res: ServerResponse, code: string): void {
  res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message: 'unknown to the hostile registry' }] }));
}
