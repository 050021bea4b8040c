// The ledger browser in a real headless browser (Debian's chromium, driven by playwright-core), on a
// ledger populated through a real docker-registry: two signers in a repository (drift), a tag that
// moved, an attested image, a long repository name, and a dozen unsigned images denied. Screenshots
// of every page are kept in .test-artifacts/ (docs/ holds copies).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLSA_V1 } from '../../services/core/verification/bundle.ts';
import { pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { pushRandomImage, type PushedImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { inTotoStatement, simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const MALLORY = { email: 'mallory@example.com', issuer: 'https://accounts.example.com' };
const TOKEN = 'ui-test-token-0123456789abcdef';
const ARTIFACTS = join(process.cwd(), '.test-artifacts');
const LONG = 'platform-engineering/payments-gateway-service-with-a-long-name';
const UNSIGNED = 12;

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let browser: Browser;
let stack: TestStack;
let first: PushedImage;
let moved: PushedImage;
const unsigned: PushedImage[] = [];

async function signedBy(repo: string, tag: string, who: typeof ALICE) {
  const image = await pushRandomImage(registry.url, repo, tag);
  await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), who)]);
  return image;
}

beforeAll(async () => {
  stack = await startTestStack({ name: 'ui', policy: (host) => policyAllowing(host, ALICE), env: () => ({ SIGNET_API_TOKENS: TOKEN }) });
  ({ db, sigstore, registry, signet } = stack);
  first = await signedBy('shop/web', 'v1', ALICE);
  await pushCosignAttestations(registry.url, 'shop/web', first.digest, [
    await sigstore.attestKeyless(inTotoStatement(first.digest, SLSA_V1, { buildDefinition: { buildType: 'https://example.com/build' }, runDetails: { builder: { id: 'https://example.com/builder' } } }), ALICE),
  ]);
  await eventually(async () => ((await db.db.selectFrom('tag_history').select('id').execute()).length >= 1 ? true : undefined), 'shop/web:v1 recorded');
  await signedBy('shop/web', 'v2', MALLORY);
  moved = await signedBy('shop/web', 'v1', ALICE);
  await signedBy(LONG, 'stable', ALICE);
  for (let i = 0; i < UNSIGNED; i++) {
    unsigned.push(await pushRandomImage(registry.url, 'shop/batch', `b${i}`));
  }
  await eventually(async () => {
    const rows = await db.db.selectFrom('decisions').select('manifest_id').execute();
    const drift = await db.db.selectFrom('ownership_changes').select('kind').where('kind', '=', 'added').execute();
    const attested = await db.db.selectFrom('signatures').select('id').where('kind', '=', 'attestation').execute();
    return rows.length >= 4 + UNSIGNED && drift.length === 1 && attested.length === 1 ? true : undefined;
  }, 'every image decided, the drift and the attestation recorded', 60_000);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A page with the token entered, collecting script errors, failed requests and CSP violations. */
async function openUi(path = '/ui'): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') {
      problems.push(m.text());
    }
  });
  // The token as a user enters it once: kept for the tab (sessionStorage).
  await page.addInitScript((t) => sessionStorage.setItem('signet-token', t), TOKEN);
  await page.goto(`${signet.url}${path}`);
  return { page, problems };
}

async function shoot(page: Page, name: string) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Each element's rendered height in pixels: a name on one line is one line high. */
function heights(page: Page, selector: string): Promise<number[]> {
  return page.$$eval(selector, (els) => els.map((e) => e.getBoundingClientRect().height));
}

describe('the ledger browser', () => {
  it('home: registries, ownership changes and denials with filters and paging; names on one line', async () => {
    const { page, problems } = await openUi();
    await page.waitForSelector('#registries a.name');
    expect(await page.textContent('#registries')).toContain(registry.host);
    await page.waitForSelector('#drift tr.drift');
    expect(await page.textContent('#drift tr.drift')).toContain(MALLORY.email);
    expect(await page.textContent('#drift tr.drift')).toContain(`before: ${ALICE.email}`);
    // Repository names in the narrow column stay on one line (they used to wrap a character per line).
    await page.waitForSelector(`#drift a[title="${registry.host}/${LONG}"]`);
    for (const h of await heights(page, '#drift a.name')) {
      expect(h).toBeLessThan(30);
    }
    // Filter: new signers only.
    await page.selectOption('#drift select[name=kind]', 'ADDED');
    await expect.poll(async () => (await page.$$('#drift tr')).length).toBe(1);
    // Denials: 12 unsigned images and one signed by someone the policy does not name, 10 a page;
    // the next page holds the rest, and the reason filter narrows them.
    await page.waitForSelector('#denials .bad');
    await expect.poll(() => page.textContent('#denials .count')).toContain(`${UNSIGNED + 1} in all, page 1`);
    expect((await page.$$('#denials tr')).length).toBe(10);
    await page.click('#denials button.next');
    await expect.poll(() => page.textContent('#denials .count')).toContain('page 2');
    expect((await page.$$('#denials tr')).length).toBe(UNSIGNED + 1 - 10);
    await page.selectOption('#denials select[name=reason]', 'UNSIGNED');
    await expect.poll(() => page.textContent('#denials .count')).toContain(`${UNSIGNED} in all, page 1`);
    await page.selectOption('#denials select[name=reason]', 'IDENTITY_MISMATCH');
    await expect.poll(() => page.textContent('#denials .count')).toContain('1 in all');
    expect(await page.textContent('#denials')).toContain('shop/web@sha256:');
    await page.selectOption('#denials select[name=reason]', '');
    await page.selectOption('#drift select[name=kind]', '');
    await page.waitForSelector('#drift tr:not(.drift)');
    await shoot(page, 'ui-home');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('registry overview: shares, outcomes chart, top signers, repositories by prefix, images by status', async () => {
    const { page, problems } = await openUi(`/ui#/registry/${encodeURIComponent(registry.host)}`);
    await page.waitForSelector('#registry');
    const shares = (await page.textContent('#shares')) ?? '';
    // 4 signed images and 12 unsigned: 16 images, 4 signed (and verified), 3 allowed (alice's), 13 denied.
    expect(shares).toContain('4 of 16');
    expect(shares).toContain('3 of 16');
    expect(shares).toContain(`${UNSIGNED + 1} of 16`);
    // The chart is drawn by uPlot (canvas), served by Signet itself.
    await page.waitForSelector('#outcomes .uplot canvas');
    expect(await page.textContent('#signers')).toMatch(/alice@example\.com[\s\S]*3[\s\S]*mallory@example\.com[\s\S]*1/);
    await page.waitForSelector('#repositories a.name');
    await page.fill('#repositories input[name=search]', 'shop/');
    await page.press('#repositories input[name=search]', 'Enter');
    await expect.poll(async () => (await page.$$eval('#repositories a.name', (as) => as.map((a) => a.textContent))).join(',')).toBe(
      `${registry.host}/shop/batch,${registry.host}/shop/web`,
    );
    await page.selectOption('#images select[name=status]', 'VERIFIED');
    await expect.poll(() => page.textContent('#images .count')).toContain('4 in all');
    await shoot(page, 'ui-registry');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('repository page: owners as a timeline, tags with their history, images filterable by status', async () => {
    const { page, problems } = await openUi(`/ui#/repository/${encodeURIComponent(registry.host)}/${encodeURIComponent('shop/web')}`);
    await page.waitForSelector('#repository');
    expect((await page.$$('#owners .timeline > div')).length).toBe(2);
    expect(await page.textContent('#owners')).toContain('added later');
    expect((await page.$$('#owners .timeline > div.drift-bar')).length).toBe(1);
    const tags = (await page.textContent('#tags')) ?? '';
    expect(tags).toContain(moved.digest.slice(0, 19));
    await page.waitForSelector('#history tr td');
    await page.selectOption('#history select[name=tag]', 'v1');
    await expect.poll(() => page.textContent('#history .count')).toContain('2 in all');
    expect(await page.textContent('#history')).toContain('first push');
    await page.selectOption('#images select[name=status]', 'UNSIGNED');
    await expect.poll(() => page.textContent('#images .count')).toContain('0 in all');
    await page.selectOption('#images select[name=status]', 'VERIFIED');
    await expect.poll(() => page.textContent('#images .count')).toContain('3 in all');
    await shoot(page, 'ui-repository');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('search: a repository name opens it, a prefix lists what matches, a tag opens the image', async () => {
    const { page, problems } = await openUi();
    await page.waitForSelector('#registries');
    // The name of a repository that exists (it used to answer "Not in the ledger").
    await page.fill('#q', `${registry.host}/shop/web`);
    await page.click('button[type=submit]');
    await page.waitForSelector('#repository');
    expect(await page.textContent('#repository')).toBe(`${registry.host}/shop/web`);
    // A prefix: repositories in that registry, and across registries.
    await page.fill('#q', `${registry.host}/shop/`);
    await page.click('button[type=submit]');
    await page.waitForSelector('#found-repositories a');
    expect(await page.$$eval('#found-repositories a', (as) => as.map((a) => a.textContent))).toEqual([`${registry.host}/shop/batch`, `${registry.host}/shop/web`]);
    await shoot(page, 'ui-search');
    await page.fill('#q', 'mall');
    await page.click('button[type=submit]');
    await page.waitForSelector('#found-identities a');
    expect(await page.textContent('#found-identities')).toContain(MALLORY.email);
    // An image by tag: owners, signatures with Rekor index and claims, attestations, deliveries.
    await page.fill('#q', `${registry.host}/shop/web:v2`);
    await page.click('button[type=submit]');
    await page.waitForSelector('#image');
    const image = (await page.textContent('#view')) ?? '';
    expect(image).toContain('admission: denied');
    expect(image).toMatch(/Owners:\s*mallory@example\.com/);
    expect(image).toContain('cosign legacy');
    expect(image).toMatch(/Webhook deliveries naming it \([1-9]/);
    // Through to the first image by its digest: allowed, with its SLSA attestation.
    await page.fill('#q', `${registry.host}/shop/web@${first.digest}`);
    await page.click('button[type=submit]');
    // The previous image's page has an #image too: wait for this one's.
    await expect.poll(() => page.textContent('#image')).toBe(`${registry.host}/shop/web@${first.digest}`);
    expect(await page.textContent('#view')).toContain('admission: allowed');
    expect(await page.textContent('#view')).toContain(SLSA_V1);
    // Alice signed three images: the Rekor index of this one's signature.
    const rekor = await db.db
      .selectFrom('signatures')
      .innerJoin('manifests', 'manifests.id', 'signatures.manifest_id')
      .select('signatures.rekor_log_index')
      .where('manifests.digest', '=', first.digest)
      .where('signatures.kind', '=', 'signature')
      .executeTakeFirstOrThrow();
    expect(await page.textContent('#view')).toContain(rekor.rekor_log_index!);
    await page.click('details summary');
    expect(await page.textContent('details')).toContain('issuer');
    await shoot(page, 'ui-image');
    // A signer: what it signed, and a click through to an image.
    await page.click(`#view a.name[title="${ALICE.email}"]`);
    await page.waitForSelector('#identity');
    await page.waitForSelector('#view a.name[href^="#/image/"]');
    await page.click('#view a.name[href^="#/image/"]');
    await page.waitForSelector('#image');
    expect(problems).toEqual([]);
    // Markup injected into the page (were escaping ever to fail) runs no script: only the page's
    // own blocks are allowed, by their hashes.
    await page.evaluate(() => {
      document.body.insertAdjacentHTML('beforeend', '<img src="/nothing-here" onerror="window.injected = 1"><script>window.injected = 2</script>');
    });
    await page.waitForTimeout(500);
    expect(await page.evaluate(() => (window as unknown as { injected?: number }).injected)).toBeUndefined();
    await page.close();
  });

  it('admissions: the admission record, filterable by result, namespace and time, in pages', async () => {
    const review = (uid: string, namespace: string, name: string, images: string[]) => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        namespace,
        operation: 'CREATE',
        userInfo: { username: 'deployer@example.com' },
        object: { metadata: { name, namespace }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } },
      },
    });
    const missing = `${registry.host}/shop/missing@sha256:${'0'.repeat(64)}`;
    for (const r of [review('ui-1', 'shop', 'web-denied', [missing]), review('ui-2', 'tools', 'no-images', [])]) {
      expect((await signet.app.inject({ method: 'POST', url: '/admission/validate', payload: r })).statusCode).toBe(200);
    }
    await eventually(async () => ((await db.db.selectFrom('admission_records').select('uid').execute()).length >= 2 ? true : undefined), 'two admissions recorded');

    const { page, problems } = await openUi('/ui#/admissions');
    await page.waitForSelector('#admissions table');
    expect(await page.textContent('#admissions')).toContain('web-denied');
    await expect.poll(() => page.textContent('#admissions .count')).toContain('2 in all, page 1');
    // Each filter is a GraphQL round trip: generous timeouts for a loaded machine.
    await page.selectOption('#admissions select[name=result]', 'DENIED');
    await expect.poll(() => page.textContent('#admissions .rows'), { timeout: 15_000 }).not.toContain('no-images');
    const denied = (await page.textContent('#admissions .rows')) ?? '';
    expect(denied).toContain('web-denied');
    expect(denied).toContain('deployer@example.com');
    expect(denied).toContain(missing);
    expect(denied).toMatch(/denied\s*unknown/);
    expect(await page.textContent('#admissions .count')).toContain('1 in all');
    await page.selectOption('#admissions select[name=result]', '');
    await page.fill('#admissions input[name=namespace]', 'tools');
    await page.dispatchEvent('#admissions input[name=namespace]', 'change');
    // Both filters changed: wait for the answer to the last (namespace tools, any result), not the one before it.
    // (The DENIED page said "1 in all" too, and the any-result page held no-images: only both together are the answer.)
    const tools = async () => `${await page.textContent('#admissions .count')}|${await page.textContent('#admissions .rows')}`;
    await expect.poll(tools, { timeout: 15_000 }).toMatch(/^1 in all, page 1\|.*no-images/);
    expect(await tools()).not.toContain('web-denied');
    // Since an instant (a DateTime variable): an hour from now leaves none, an hour ago the record.
    const since = async (at: Date) => {
      await page.fill('#admissions input[name=since]', at.toISOString());
      await page.dispatchEvent('#admissions input[name=since]', 'change');
    };
    await since(new Date(Date.now() + 3_600_000));
    await expect.poll(tools, { timeout: 15_000 }).toMatch(/^0 in all, page 1\|none/);
    await since(new Date(Date.now() - 3_600_000));
    await expect.poll(tools, { timeout: 15_000 }).toMatch(/^1 in all, page 1\|.*no-images/);
    // Reached from every page's header.
    await page.goto(`${signet.url}/ui#/`);
    await page.waitForSelector('#registries a.name');
    await page.click('#nav-admissions');
    await page.waitForSelector('#admissions table');
    await shoot(page, 'ui-admissions');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('asks for the token when none is given, and shows the ledger once it is entered', async () => {
    const page = await browser.newPage();
    await page.goto(`${signet.url}/ui`);
    await expect.poll(() => page.textContent('#view')).toContain('API token');
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.waitForSelector('#registries a.name');
    await page.close();
  });

  it('serves GraphiQL bundled: it renders with nothing fetched from outside Signet (air-gapped)', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const elsewhere: string[] = [];
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== new URL(signet.url).origin) {
        elsewhere.push(req.url());
      }
    });
    await page.goto(`${signet.url}/graphql`);
    // The page carries GraphiQL whole (about 9 MB of script): slow to parse on a busy machine.
    await page.waitForSelector('.graphiql-container', { timeout: 50_000 });
    expect(await page.title()).toBe('Signet — ownership ledger');
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'graphiql.png') });
    expect(elsewhere).toEqual([]);
    await page.close();
  }, 90_000);

  it('is a page without data: public, with a strict content security policy', async () => {
    const res = await fetch(`${signet.url}/ui`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toMatch(/script-src[^;]*'self'/);
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+={0,2}' 'sha256-[A-Za-z0-9+/]+={0,2}';/);
    const html = await res.text();
    // Nothing from another origin: no <script src>, no stylesheet link.
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet/);
    expect((await fetch(`${signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ denials { totalCount } }"}' })).status).toBe(401);
  });
});
