import { createServer, type Server } from 'node:http';
import { forward } from './fault-proxy.ts';

/**
 * A thin proxy in front of a real registry that adds the OCI 1.1 referrers API
 * (`GET /v2/<name>/referrers/<digest>`, with `artifactType` filtering) to a registry that lacks it
 * (distribution 2.8), answering from the referrers tag schema's `sha256-<hex>` index the pushes
 * maintain. With the API on it hides those tags from its clients, so a client that finds referrers
 * can only have used the API. With it off it passes everything through, as the registry is.
 */
export interface ReferrersShim {
  readonly url: string;
  readonly host: string;
  /** Referrers API requests answered; fallback-tag requests refused while the API was on. */
  readonly counts: { api: number; hiddenTags: number };
  setApi(on: boolean): void;
  close(): Promise<void>;
}

const REFERRERS = /^\/v2\/(.+)\/referrers\/(sha256):([0-9a-f]{64})(?:\?(.*))?$/;
const FALLBACK_TAG = /^\/v2\/.+\/manifests\/sha256-[0-9a-f]{64}$/;

export async function startReferrersShim(target: string): Promise<ReferrersShim> {
  const upstream = new URL(target);
  const counts = { api: 0, hiddenTags: 0 };
  let api = false;
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const m = api && req.method === 'GET' ? REFERRERS.exec(url) : null;
    if (m !== null) {
      counts.api++;
      const [, name, alg, hex, query] = m;
      const filter = new URLSearchParams(query ?? '').get('artifactType');
      void fetch(`${upstream.origin}/v2/${name}/manifests/${alg}-${hex}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } }).then(
        async (up) => {
          const index = up.ok ? ((await up.json()) as { manifests?: { artifactType?: string }[] }) : { manifests: [] };
          const manifests = (index.manifests ?? []).filter((d) => filter === null || d.artifactType === filter);
          res.writeHead(200, {
            'content-type': 'application/vnd.oci.image.index.v1+json',
            ...(filter === null ? {} : { 'oci-filters-applied': 'artifactType' }),
          });
          res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
        },
        () => res.destroy(),
      );
      return;
    }
    if (api && req.method === 'GET' && FALLBACK_TAG.test(url)) {
      counts.hiddenTags++;
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"hidden by the referrers shim"}]}');
      return;
    }
    forward(upstream, req, res, url);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    counts,
    setApi(on) {
      api = on;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
