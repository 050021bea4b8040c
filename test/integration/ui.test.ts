// The ownership page in a real headless browser (Debian's chromium, driven by playwright-core):
// an image signed through a real docker-registry, a second signer arriving in the repository
// (drift), and an unsigned image denied. A screenshot is kept in .test-artifacts/.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const MALLORY = { email: 'mallory@example.com', issuer: 'https://accounts.example.com' };
const TOKEN = 'ui-test-token-0123456789abcdef';
const ARTIFACTS = join(process.cwd(), '.test-artifacts');

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let browser: Browser;
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ name: 'ui', policy: (host) => policyAllowing(host, ALICE), env: () => ({ SIGNET_API_TOKENS: TOKEN }) });
  ({ db, sigstore, registry, signet } = stack);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signedBy(repo: string, tag: string, who: typeof ALICE) {
  const image = await pushRandomImage(registry.url, repo, tag);
  await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), who)]);
  return image;
}

describe('the ownership page', () => {
  it('finds an image, shows its owners, signatures with Rekor index and claims, drift and denials', async () => {
    const first = await signedBy('shop/web', 'v1', ALICE);
    await signedBy('shop/web', 'v2', MALLORY);
    const unsigned = await pushRandomImage(registry.url, 'shop/web', 'v3');
    await eventually(async () => {
      const rows = await db.db.selectFrom('decisions').select('manifest_id').execute();
      const drift = await db.db.selectFrom('ownership_changes').select('kind').where('kind', '=', 'added').execute();
      return rows.length >= 3 && drift.length === 1 ? true : undefined;
    }, 'three images decided and the drift recorded');

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${signet.url}/ui`);
    // Without the token the page says what it needs.
    await expect.poll(() => page.textContent('#drift')).toContain('API token');
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.waitForSelector('#drift tr.drift');
    expect(await page.textContent('#drift tr.drift')).toContain(MALLORY.email);
    expect(await page.textContent('#drift tr.drift')).toContain(`before: ${ALICE.email}`);
    await page.waitForSelector('#denials .bad');
    expect(await page.textContent('#denials')).toContain(unsigned.digest.slice(7, 19));

    await page.fill('#q', `${registry.host}/shop/web:v1`);
    await page.click('button[type=submit]');
    await page.waitForSelector('#image');
    const result = (await page.textContent('#result')) ?? '';
    expect(result).toContain(`${registry.host}/shop/web@${first.digest}`);
    expect(result).toContain('admission: allowed');
    expect(result).toMatch(/Owners:\s*alice@example\.com/);
    const rekor = await db.db.selectFrom('signatures').select('rekor_log_index').where('subject', '=', ALICE.email).executeTakeFirstOrThrow();
    expect(result).toContain(rekor.rekor_log_index!);
    expect(result).toContain('cosign_legacy');
    expect(result).toMatch(/Owners of 127\.0\.0\.1:\d+\/shop\/web over time/);
    expect(result).toContain(MALLORY.email);
    await page.click('details summary');
    expect(await page.textContent('details')).toContain('issuer');

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'ownership-page.png'), fullPage: true });

    // A signer: what it signed, and a click through to the image.
    await page.fill('#q', MALLORY.email);
    await page.click('button[type=submit]');
    await page.waitForSelector('#identity');
    expect(await page.textContent('#result')).toContain('1 images signed');
    await page.click('#result a[data-ref]');
    await page.waitForSelector('#image');
    expect(await page.textContent('#result')).toContain('admission: denied');
    expect(errors).toEqual([]);
    // Markup injected into the page (were escaping ever to fail) runs no script: only the page's
    // own script is allowed, by its hash.
    await page.evaluate(() => {
      document.body.insertAdjacentHTML('beforeend', '<img src="/nothing-here" onerror="window.injected = 1"><script>window.injected = 2</script>');
    });
    await page.waitForTimeout(500);
    expect(await page.evaluate(() => (window as unknown as { injected?: number }).injected)).toBeUndefined();
    await page.close();
  });

  it('lists the admission record, filterable by result and namespace', async () => {
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

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${signet.url}/ui`);
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.waitForSelector('#admissions table');
    expect(await page.textContent('#admissions')).toContain('web-denied');
    await page.selectOption('#adm-result', 'DENIED');
    await page.click('#admission-filter button[type=submit]');
    // Generous: each filter is a GraphQL round trip, slow on a loaded machine.
    await expect.poll(() => page.textContent('#admissions'), { timeout: 15_000 }).not.toContain('no-images');
    const denied = (await page.textContent('#admissions')) ?? '';
    expect(denied).toContain('web-denied');
    expect(denied).toContain('deployer@example.com');
    expect(denied).toContain(missing);
    expect(denied).toMatch(/denied\s*unknown/);
    await page.selectOption('#adm-result', '');
    await page.fill('#adm-namespace', 'tools');
    await page.click('#admission-filter button[type=submit]');
    await expect.poll(() => page.textContent('#admissions'), { timeout: 15_000 }).toContain('no-images');
    expect(await page.textContent('#admissions')).not.toContain('web-denied');
    expect(errors).toEqual([]);
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
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+={0,2}'/);
    expect((await fetch(`${signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ denials { totalCount } }"}' })).status).toBe(401);
  });
});
