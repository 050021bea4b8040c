import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

/**
 * The ownership page at `/ui`: one small HTML file, no framework, no build step. Everything it
 * shows comes from `/graphql` in the browser, with the API token (when SIGNET_API_TOKENS is set)
 * kept in sessionStorage. The page itself holds no data, so it is public, like GraphiQL.
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

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signet — who signed what</title>
<style>
  :root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde2e8; --ok: #13795b; --bad: #b42318; --warn: #8a5a00; --bg-warn: #fff4d6; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f7f8fa; }
  header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0 12px 0 0; }
  header form { display: flex; gap: 8px; flex: 1; min-width: 320px; }
  input { font: inherit; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; }
  #q { flex: 1; }
  button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 0; background: #3b6fd8; color: #fff; cursor: pointer; }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section h2 { font-size: 15px; margin: 0 0 8px; }
  #result { grid-row: span 2; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
  td .ok, td .bad, td code { white-space: nowrap; }
  h2 { overflow-wrap: anywhere; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  .ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
  .drift { background: var(--bg-warn); }
  .tag { display: inline-block; padding: 0 6px; border-radius: 4px; background: #eef1f5; font-size: 12px; margin-right: 4px; }
  .muted { color: var(--muted); } code { font: 12px ui-monospace, monospace; }
  details summary { cursor: pointer; color: var(--muted); }
  #error { color: var(--bad); }
  /* Admission record */
  #admissions-section { grid-column: 1 / -1; }
  #admission-filter { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 8px; }
  #admission-filter select { font: inherit; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; }
  .warned { color: var(--warn); font-weight: 600; }
</style>
</head>
<body>
<header>
  <h1>Signet</h1>
  <form id="search">
    <input id="q" name="q" placeholder="registry/repo:tag, registry/repo@sha256:…, or a signer (email, workflow URI, key fingerprint)" autocomplete="off">
    <button type="submit">Search</button>
  </form>
  <input id="token" type="password" placeholder="API token" size="18" title="SIGNET_API_TOKENS, kept for this tab only">
</header>
<main>
  <section id="result"><h2>Search</h2><p class="muted">Look up an image to see who owns it, or a signer to see what it signed.</p><p id="error"></p></section>
  <section><h2>Ownership changes</h2><div id="drift" class="muted">loading…</div></section>
  <section><h2>Recent denials</h2><div id="denials" class="muted">loading…</div></section>
  <section id="admissions-section"><h2>Admissions</h2>
    <form id="admission-filter">
      <input id="adm-namespace" placeholder="namespace" size="14" autocomplete="off">
      <select id="adm-result"><option value="">any result</option><option>DENIED</option><option>WARNED</option><option>EXEMPTED</option><option>ALLOWED</option></select>
      <input id="adm-reason" placeholder="reason (e.g. unsigned)" size="18" autocomplete="off">
      <input id="adm-image" placeholder="image, repository or digest" size="30" autocomplete="off">
      <input id="adm-since" placeholder="since (2026-11-30T08:00:00Z)" size="24" autocomplete="off">
      <button type="submit">Filter</button>
    </form>
    <div id="admissions" class="muted">loading…</div>
    <button id="adm-more" type="button" hidden>More</button>
  </section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const time = (t) => (t ? esc(t.replace('T', ' ').replace(/\\.\\d+Z$/, 'Z')) : '–');
const token = $('token');
token.value = sessionStorage.getItem('signet-token') ?? '';
token.addEventListener('change', () => { sessionStorage.setItem('signet-token', token.value); loadSide(); });

async function gql(query, variables = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token.value) headers.authorization = 'Bearer ' + token.value;
  const res = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new Error('an API token is needed: enter it at the top right');
  if (body.errors) throw new Error(body.errors.map((e) => e.message).join('; '));
  return body.data;
}

const status = (s) => '<span class="' + (s === 'VERIFIED' ? 'ok' : 'bad') + '">' + esc(String(s).toLowerCase()) + '</span>';
const who = (i) => (i ? esc(i.subject) + (i.issuer ? ' <span class="muted">(' + esc(i.issuer) + ')</span>' : '') : '–');

function signatureRows(list) {
  if (list.length === 0) return '<p class="muted">none</p>';
  return '<table><tr><th>outcome</th><th>signer</th><th>format</th><th>Rekor</th><th>signed</th><th>claims</th></tr>' + list.map((s) =>
    '<tr><td>' + status(s.status) + (s.reason ? '<br><span class="muted">' + esc(s.reason) + '</span>' : '') +
    (s.withdrawnAt ? '<br><span class="bad">withdrawn</span> <span class="muted">' + time(s.withdrawnAt) + ' (' + esc(String(s.withdrawnBy).toLowerCase()) + '): counts for nothing</span>' : '') + '</td>' +
    '<td>' + who(s.identity) + '</td>' +
    '<td><code>' + esc(String(s.format).toLowerCase()) + '</code>' + (s.predicateType ? '<br><span class="muted">' + esc(s.predicateType) + '</span>' : '') + '</td>' +
    '<td>' + (s.rekorLogIndex ? (s.rekorUrl ? '<a href="' + esc(s.rekorUrl) + '" target="_blank" rel="noopener">' + esc(s.rekorLogIndex) + '</a>' : esc(s.rekorLogIndex)) : '–') + '</td>' +
    '<td>' + time(s.integratedTime ?? s.timestampedAt ?? s.firstSeenAt) + '</td>' +
    '<td>' + (s.claims.length ? '<details><summary>' + s.claims.length + ' claims</summary>' + s.claims.map((c) => '<div><code>' + esc(c.name) + '</code> ' + esc(c.value) + '</div>').join('') + '</details>' : '–') + '</td></tr>').join('') + '</table>';
}

const SIG = 'status reason format predicateType rekorLogIndex rekorUrl integratedTime timestampedAt firstSeenAt withdrawnAt withdrawnBy identity { subject issuer } claims { name value }';

async function showImage(ref) {
  const d = await gql('query($ref: String!) { image(ref: $ref) { reference status statusReason tags decision { allowed reason message } owners { subject issuer } signatures { ' + SIG + ' } attestations { ' + SIG + ' } repository { registry name owners { identity { subject issuer } firstSignedAt lastSignedAt imageCount } } } }', { ref });
  const i = d.image;
  if (!i) return '<h2>' + esc(ref) + '</h2><p class="muted">Not in the ledger.</p>';
  const owners = i.repository.owners;
  return '<h2 id="image">' + esc(i.reference) + '</h2>' +
    '<p>' + status(i.status) + ' ' + i.tags.map((t) => '<span class="tag">' + esc(t) + '</span>').join('') +
    (i.decision ? ' — admission: <span class="' + (i.decision.allowed ? 'ok' : 'bad') + '">' + (i.decision.allowed ? 'allowed' : 'denied') + '</span> <span class="muted">' + esc(i.decision.message) + '</span>' : '') + '</p>' +
    '<p><b>Owners:</b> ' + (i.owners.length ? i.owners.map(who).join(', ') : '<span class="muted">nobody</span>') + '</p>' +
    '<h2>Signatures</h2>' + signatureRows(i.signatures) +
    '<h2>Attestations</h2>' + signatureRows(i.attestations) +
    '<h2>Owners of ' + esc(i.repository.registry + '/' + i.repository.name) + ' over time</h2>' +
    (owners.length ? '<table><tr><th>signer</th><th>first signed</th><th>last signed</th><th>images</th></tr>' + owners.map((o) => '<tr><td>' + who(o.identity) + '</td><td>' + time(o.firstSignedAt) + '</td><td>' + time(o.lastSignedAt) + '</td><td>' + o.imageCount + '</td></tr>').join('') + '</table>' : '<p class="muted">none</p>');
}

async function showIdentity(subject) {
  const d = await gql('query($s: String!) { identities(subject: $s) { nodes { subject issuer images(first: 50) { totalCount nodes { reference status } } } } }', { s: subject });
  if (d.identities.nodes.length === 0) return '<h2>' + esc(subject) + '</h2><p class="muted">No verified signature by this signer in the ledger.</p>';
  return d.identities.nodes.map((id) => '<h2 id="identity">' + who(id) + '</h2><p>' + id.images.totalCount + ' images signed</p><table><tr><th>image</th><th>status</th></tr>' +
    id.images.nodes.map((n) => '<tr><td><a href="#" data-ref="' + esc(n.reference) + '">' + esc(n.reference) + '</a></td><td>' + status(n.status) + '</td></tr>').join('') + '</table>').join('');
}

const looksLikeImage = (q) => /@sha256:|^[^@\\s]+\\/[^@\\s]+(:[\\w][\\w.-]*)?$/.test(q) && !/^https?:\\/\\//.test(q) && !/^sha256:/.test(q);

async function search(q) {
  const out = $('result');
  out.innerHTML = '<p class="muted">searching…</p>';
  try {
    out.innerHTML = looksLikeImage(q) ? await showImage(q) : await showIdentity(q);
  } catch (e) {
    out.innerHTML = '<h2>Search</h2><p id="error">' + esc(e.message) + '</p>';
  }
  history.replaceState(null, '', '?q=' + encodeURIComponent(q));
}

$('search').addEventListener('submit', (e) => { e.preventDefault(); const q = $('q').value.trim(); if (q) search(q); });
$('result').addEventListener('click', (e) => { const ref = e.target.dataset?.ref; if (ref) { e.preventDefault(); $('q').value = ref; search(ref); } });

async function loadSide() {
  try {
    const d = await gql('{ ownershipChanges(first: 10) { nodes { kind detectedAt repository { registry name } identity { subject issuer } previousOwners { subject } } } denials(first: 10) { nodes { reason message decidedAt image { reference } } } }');
    const changes = d.ownershipChanges.nodes;
    $('drift').innerHTML = changes.length === 0 ? 'none yet' : '<table>' + changes.map((c) => '<tr class="' + (c.kind === 'ADDED' ? 'drift' : '') + '"><td>' + (c.kind === 'ADDED' ? '<b>new signer</b>' : 'first signer') + '<br>' + esc(c.repository.registry + '/' + c.repository.name) + '</td><td>' + who(c.identity) + (c.previousOwners.length ? '<br><span class="muted">before: ' + c.previousOwners.map((p) => esc(p.subject)).join(', ') + '</span>' : '') + '</td><td class="muted">' + time(c.detectedAt) + '</td></tr>').join('') + '</table>';
    $('drift').classList.remove('muted');
    const denials = d.denials.nodes;
    $('denials').innerHTML = denials.length === 0 ? 'none' : '<table>' + denials.map((x) => '<tr><td><a href="#" data-ref="' + esc(x.image.reference) + '">' + esc(x.image.reference.replace(/@sha256:(.{12}).*/, '@sha256:$1…')) + '</a><br><span class="bad">' + esc(String(x.reason).toLowerCase()) + '</span> <span class="muted">' + esc(x.message) + '</span></td></tr>').join('') + '</table>';
    $('denials').classList.remove('muted');
  } catch (e) {
    $('drift').textContent = e.message;
    $('denials').textContent = e.message;
  }
}
$('denials').addEventListener('click', (e) => { const ref = e.target.dataset?.ref; if (ref) { e.preventDefault(); $('q').value = ref; search(ref); } });

// ─── Admission record: a filterable list of Query.admissions ───
const ADMISSIONS = 'query($namespace: String, $result: AdmissionResult, $reason: String, $image: String, $since: String, $after: String) { admissions(namespace: $namespace, result: $result, reason: $reason, image: $image, since: $since, first: 25, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { at namespace kind name user operation result reason breakGlass images { image digest reason rule mode allowed } } } }';
const RESULT_CLASS = { ALLOWED: 'ok', EXEMPTED: 'ok', WARNED: 'warned', DENIED: 'bad' };
let admissionCursor = null;

function admissionFilter() {
  const v = (id) => $(id).value.trim() || null;
  return { namespace: v('adm-namespace'), result: v('adm-result'), reason: v('adm-reason'), image: v('adm-image'), since: v('adm-since') };
}

function admissionRow(a) {
  const images = a.images.map((i) => '<div><code>' + esc(i.image) + '</code> <span class="' + (i.allowed ? 'ok' : 'bad') + '">' + esc(i.reason) + '</span> <span class="muted">' + esc(i.mode.toLowerCase()) + (i.rule ? ' · ' + esc(i.rule) : '') + '</span></div>').join('');
  return '<tr><td class="muted">' + time(a.at) + '</td><td>' + esc(a.namespace ?? '–') + '</td><td>' + esc(a.kind) + '/' + esc(a.name ?? '–') + '<br><span class="muted">' + esc(a.user ?? '') + '</span></td>' +
    '<td><span class="' + (RESULT_CLASS[a.result] ?? '') + '">' + esc(a.result.toLowerCase()) + '</span>' + (a.breakGlass ? ' <span class="tag">break-glass</span>' : '') + '<br><span class="muted">' + esc(a.reason) + '</span></td><td>' + images + '</td></tr>';
}

async function loadAdmissions(more) {
  const out = $('admissions');
  try {
    const d = await gql(ADMISSIONS, { ...admissionFilter(), after: more ? admissionCursor : null });
    const c = d.admissions;
    const rows = c.nodes.map(admissionRow).join('');
    if (more) {
      out.querySelector('table').insertAdjacentHTML('beforeend', rows);
    } else {
      out.innerHTML = c.nodes.length === 0 ? 'none recorded' : c.totalCount + ' recorded<table><tr><th>time</th><th>namespace</th><th>object / user</th><th>result</th><th>images</th></tr>' + rows + '</table>';
    }
    out.classList.toggle('muted', c.nodes.length === 0 && !more);
    admissionCursor = c.pageInfo.endCursor;
    $('adm-more').hidden = !c.pageInfo.hasNextPage;
  } catch (e) {
    out.textContent = e.message;
    $('adm-more').hidden = true;
  }
}
$('admission-filter').addEventListener('submit', (e) => { e.preventDefault(); loadAdmissions(false); });
$('adm-more').addEventListener('click', () => loadAdmissions(true));
token.addEventListener('change', () => loadAdmissions(false));
loadAdmissions(false);
// ─── end of admission record ───

loadSide();
const initial = new URLSearchParams(location.search).get('q');
if (initial) { $('q').value = initial; search(initial); }
</script>
</body>
</html>
`;

/**
 * The page's one script and one style block are allowed by their hashes, nothing else inline: an
 * injected `<script>` or event handler (were escaping ever to fail) does not run.
 */
function inlineHash(tag: 'script' | 'style'): string {
  const body = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(PAGE)?.[1];
  if (body === undefined) {
    throw new Error(`the /ui page has no <${tag}> block`);
  }
  return `'sha256-${createHash('sha256').update(body).digest('base64')}'`;
}

const CSP = [
  "default-src 'none'",
  `script-src ${inlineHash('script')}`,
  `style-src ${inlineHash('style')}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
