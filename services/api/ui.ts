import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';

/**
 * The ledger browser at `/ui` (`ui/page.html`): one HTML page, no framework, no build step, routed
 * by the URL's hash (registry overview, repository, image, signer, search). Everything it shows
 * comes from `/graphql` in the browser, with the API token (when SIGNET_API_TOKENS is set) kept in
 * sessionStorage. The page itself holds no data, so it is public, like GraphiQL.
 */
export function registerUi(app: FastifyInstance): void {
  app.get('/ui', (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(PAGE),
  );
  app.get('/', (_req, reply) => reply.redirect('/ui'));
}

const require = createRequire(import.meta.url);

/**
 * uPlot (the charts), from node_modules, inlined into the page as its own script and style blocks:
 * served by Signet itself (no CDN; works air-gapped) and allowed by hash like the page's own code.
 */
function uplotBlocks(): string {
  const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  if (/<\/(script|style)/i.test(js + css)) {
    throw new Error('uPlot cannot be inlined: it contains a closing script or style tag');
  }
  return `<style>${css}</style>\n<script>${js}</script>`;
}

const PAGE = readFileSync(new URL('ui/page.html', import.meta.url), 'utf8').replace('<!--uplot-->', uplotBlocks);

/**
 * Every script and style block of the page is allowed by its hash, nothing else inline: an
 * injected `<script>`, style attribute or event handler (were escaping ever to fail) does not run.
 */
function inlineHashes(tag: 'script' | 'style'): string {
  const bodies = [...PAGE.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1] ?? '');
  if (bodies.length === 0) {
    throw new Error(`the /ui page has no <${tag}> block`);
  }
  return bodies.map((body) => `'sha256-${createHash('sha256').update(body).digest('base64')}'`).join(' ');
}

const CSP = [
  "default-src 'none'",
  `script-src ${inlineHashes('script')}`,
  `style-src ${inlineHashes('style')}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
