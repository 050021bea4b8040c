// Rollout controls end to end: real AdmissionReview requests through a running (API-only) Signet
// whose ledger was decided by the real decider, for every mode, namespace scope, exemption and
// break-glass case. The one indexed image (registry.test/team/app) is unsigned; everything else is
// decided by the policy alone (not indexed, or allowed without verification).
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdmissionReview } from '../../services/api/admission.ts';
import { admit } from '../../services/api/admit.ts';
import { DecisionTable } from '../../services/api/decision-table.ts';
import { sha256Digest } from '../../services/common/domain/digest.ts';
import { ledgerStream } from '../../services/common/events.ts';
import { createLogger } from '../../services/common/logger.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';
import { createDecider } from '../../services/core/decider.ts';
import { runSignetCli } from '../helpers/cli.ts';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { startTestSignet, TEST_REDIS_URL, type TestSignet } from '../helpers/signet.ts';

const APP = `registry.test/team/app@${sha256Digest('rollout-app')}`;
const TRIAL = 'registry.test/trial/tool:1.0';
const LEGACY = 'registry.test/team/legacy:2';
const HOTFIX = 'registry.test/team/hotfix:3';
const NGINX = 'nginx:1.27';
/** The hotfix exemption expires this long after the policy is written. */
const HOTFIX_LIFETIME_MS = 20_000;

let db: TestDb;
let signet: TestSignet;
let tmp: string;
let alerts: Server;
const alerted: Record<string, unknown>[] = [];
let hotfixExpires: number;
let policyText: string;

function policyYaml(expires: string): string {
  return `
mode: enforce
allow_with_verification:
  registry.test:
    team/*:
      certificate-identity: release@example.com
      certificate-oidc-issuer: https://accounts.example.com
    trial/*:
      certificate-identity: release@example.com
      certificate-oidc-issuer: https://accounts.example.com
      mode: warn
allow_without_verification:
  docker.io: [library/*]
scopes:
  sandbox:
    namespaces: [sandbox, "dev-*"]
    mode: audit
  payments:
    namespaces: [payments]
    allow_without_verification:
      registry.test: [team/legacy]
  preview:
    namespaces: ["preview-*"]
    mode: warn
exemptions:
  - images: [registry.test/team/hotfix]
    namespaces: [payments]
    reason: INC-42 hotfix until the signing pipeline is fixed
    expires: ${expires}
break_glass:
  namespaces: [payments, "ops-*"]
`;
}

beforeAll(async () => {
  db = await createTestDb();
  tmp = await mkdtemp(join(tmpdir(), 'signet-rollout-'));
  alerts = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      alerted.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(200).end('ok');
    });
  });
  alerts.listen(0, '127.0.0.1');
  await once(alerts, 'listening');
  // The indexed image: a manifest with no signature, decided by the real decider before the API starts.
  const { id: registryId } = await db.db.insertInto('registries').values({ host: 'registry.test' }).returning('id').executeTakeFirstOrThrow();
  const { id: repositoryId } = await db.db.insertInto('repositories').values({ registry_id: registryId, name: 'team/app' }).returning('id').executeTakeFirstOrThrow();
  const { id: manifestId } = await db.db
    .insertInto('manifests')
    .values({ repository_id: repositoryId, digest: sha256Digest('rollout-app'), media_type: 'application/vnd.oci.image.manifest.v1+json', size: 1, status: 'unsigned' })
    .returning('id')
    .executeTakeFirstOrThrow();
  hotfixExpires = Date.now() + HOTFIX_LIFETIME_MS;
  policyText = policyYaml(new Date(hotfixExpires).toISOString());
  await writeFile(join(tmp, 'policy.yaml'), policyText);
  const redis = new Redis(TEST_REDIS_URL);
  const log = createLogger({ logLevel: 'silent' });
  await createDecider({ db: db.db, redis, stream: ledgerStream({ queuePrefix: 'signet-rollout-test', feedMaxLen: 100 }), policy: parsePolicy(policyText), policySource: policyText, log }).decideManifests([manifestId]);
  redis.disconnect();
  signet = await startTestSignet({
    DATABASE_URL: db.url,
    SIGNET_ROLES: 'api',
    SIGNET_POLICY: join(tmp, 'policy.yaml'),
    SIGNET_ALERT_WEBHOOK_URL: `http://127.0.0.1:${(alerts.address() as AddressInfo).port}/hooks/signet`,
  });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
  alerts?.close();
  await rm(tmp, { recursive: true, force: true });
});

interface ReviewOptions {
  readonly apiVersion?: string;
  readonly annotations?: Record<string, string>;
  readonly user?: string;
}

function podReview(namespace: string, images: readonly string[], opts: ReviewOptions = {}) {
  return {
    apiVersion: opts.apiVersion ?? 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${namespace}-${images.length}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: opts.user ?? 'alice@example.com', groups: ['system:authenticated'] },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace, annotations: opts.annotations ?? {} },
        spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
      },
    },
  };
}

interface Answer {
  apiVersion: string;
  response: { uid: string; allowed: boolean; warnings?: string[]; status?: { code: number; message: string } };
}

async function validate(namespace: string, images: readonly string[], opts: ReviewOptions = {}): Promise<Answer> {
  const res = await signet.app.inject({ method: 'POST', url: '/admission/validate', payload: podReview(namespace, images, opts) });
  expect(res.statusCode).toBe(200);
  return res.json<Answer>();
}

describe('exemptions', () => {
  it('admit a matching image in their namespaces with a warning until they expire, then stop, with no reload', async () => {
    const before = Date.now();
    expect(before).toBeLessThan(hotfixExpires);
    const exempted = await validate('payments', [HOTFIX]);
    expect(exempted.response.allowed).toBe(true);
    expect(exempted.response.warnings).toEqual([expect.stringContaining('admitted by exemption exemptions.0 until')]);
    // Not in a namespace the exemption names.
    expect((await validate('default', [HOTFIX])).response.allowed).toBe(false);
    await sleep(Math.max(0, hotfixExpires - Date.now() + 100));
    const expired = await validate('payments', [HOTFIX]);
    expect(expired.response.allowed).toBe(false);
    expect(expired.response.status?.message).toContain(`${HOTFIX}: unknown`);
  }, HOTFIX_LIFETIME_MS + 30_000);
});

describe('modes', () => {
  it('enforce (the policy default): a namespace no scope covers is decided by the top-level rules and denied', async () => {
    const a = await validate('default', [APP, NGINX]);
    expect(a.response.allowed).toBe(false);
    expect(a.response.status?.message).toContain(`${APP}: unsigned`);
    expect(a.response.status?.message).not.toContain('nginx');
    expect(a.response.warnings).toBeUndefined();
  });

  it("warn (a rule's own mode): admitted, with one warning line naming the image, the reason and the rule", async () => {
    const a = await validate('default', [TRIAL, NGINX]);
    expect(a.response.allowed).toBe(true);
    expect(a.response.status).toBeUndefined();
    expect(a.response.warnings).toHaveLength(1);
    expect(a.response.warnings![0]).toMatch(/^registry\.test\/trial\/tool:1\.0: unknown \(allow_with_verification\.registry\.test\.trial\/\*\)/);
  });

  it("warn (a scope's mode): the indexed unsigned image is admitted with a warning in preview-* namespaces", async () => {
    const a = await validate('preview-42', [APP]);
    expect(a.response).toMatchObject({ allowed: true });
    expect(a.response.warnings).toEqual([expect.stringMatching(new RegExp(`^${APP.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: unsigned \\(allow_with_verification\\.registry\\.test\\.team/\\*\\)`))]);
  });

  it('audit (a scope matched by a glob): admitted silently', async () => {
    const a = await validate('dev-7', [APP]);
    expect(a.response.allowed).toBe(true);
    expect(a.response.warnings).toBeUndefined();
    expect(a.response.status).toBeUndefined();
  });

  it("a rule's own mode beats its scope's: the warn rule still warns in an audit namespace", async () => {
    const a = await validate('sandbox', [APP, TRIAL]);
    expect(a.response.allowed).toBe(true);
    expect(a.response.warnings).toEqual([expect.stringContaining(`${TRIAL}: unknown`)]);
  });

  it('a v1beta1 review is answered in v1beta1, with the warnings', async () => {
    const a = await validate('preview-1', [APP], { apiVersion: 'admission.k8s.io/v1beta1' });
    expect(a.apiVersion).toBe('admission.k8s.io/v1beta1');
    expect(a.response.allowed).toBe(true);
    expect(a.response.warnings).toHaveLength(1);
    const denied = await validate('default', [APP], { apiVersion: 'admission.k8s.io/v1beta1' });
    expect(denied).toMatchObject({ apiVersion: 'admission.k8s.io/v1beta1', response: { allowed: false, status: { code: 403 } } });
  });

  it('every decision endpoint reports the mode and scope with the decision', async () => {
    const single = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(APP)}&namespace=sandbox` });
    expect(single.json()).toMatchObject({ allowed: false, reason: 'unsigned', mode: 'audit', scope: 'sandbox' });
    const batch = await signet.app.inject({ method: 'POST', url: '/v1/decisions', payload: { images: [APP, TRIAL] } });
    expect(batch.json<{ decisions: unknown[] }>().decisions).toMatchObject([
      { image: APP, allowed: false, mode: 'enforce', scope: null },
      { image: TRIAL, allowed: false, mode: 'warn', scope: null },
    ]);
    const verify = await signet.app.inject({ method: 'POST', url: '/verify', payload: { image: APP, namespace: 'preview-3' } });
    expect(verify.json()).toMatchObject({ verified: false, mode: 'warn', scope: 'preview' });
    const gk = await signet.app.inject({
      method: 'POST',
      url: '/gatekeeper/validate',
      payload: { apiVersion: 'externaldata.gatekeeper.sh/v1beta1', kind: 'ProviderRequest', request: { keys: [TRIAL] } },
    });
    expect(gk.json()).toMatchObject({ response: { items: [{ key: TRIAL, value: { allowed: false, mode: 'warn' }, error: expect.stringContaining('unknown') }] } });
  });
});

describe('namespace scopes', () => {
  it("a scope's own rule beats the top-level one in its namespaces only", async () => {
    expect((await validate('payments', [LEGACY])).response.allowed).toBe(true);
    const elsewhere = await validate('default', [LEGACY]);
    expect(elsewhere.response.allowed).toBe(false);
    const d = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(LEGACY)}&namespace=payments` });
    expect(d.json()).toMatchObject({ allowed: true, reason: 'allowed_without_verification', rule: 'scopes.payments.allow_without_verification.registry.test.team/legacy', scope: 'payments' });
  });

  it('keeps the precomputed per-scope decisions in the ledger: one row, the scopes that differ in it', async () => {
    const row = await db.db.selectFrom('decisions').select(['mode', 'scoped', 'reason']).executeTakeFirstOrThrow();
    expect(row.mode).toBe('enforce');
    expect(row.reason).toBe('unsigned');
    expect(Object.keys(row.scoped ?? {}).sort()).toEqual(['preview', 'sandbox']);
    expect(row.scoped?.sandbox).toMatchObject({ allowed: false, reason: 'unsigned', mode: 'audit' });
  });
});

describe('break-glass', () => {
  const annotations = { 'signet.dev/break-glass': 'payments outage, INC-77' };

  it('is honoured in a namespace the policy allows it for: admitted with a warning, and alerted with the user', async () => {
    const a = await validate('ops-1', [APP], { annotations, user: 'oncall@example.com' });
    expect(a.response.allowed).toBe(true);
    expect(a.response.warnings?.[0]).toContain('break-glass');
    expect(a.response.warnings?.[0]).toContain('oncall@example.com');
    expect(a.response.warnings?.some((w) => w.startsWith(`${APP}: unsigned, admitted by break-glass`))).toBe(true);
    await expect.poll(() => alerted.length).toBe(1);
    expect(alerted[0]).toMatchObject({
      text: expect.stringContaining('oncall@example.com'),
      breakGlass: { namespace: 'ops-1', kind: 'Pod', name: 'web', user: 'oncall@example.com', reason: 'payments outage, INC-77', images: [{ image: APP, reason: 'unsigned' }] },
    });
  });

  it('is refused outside those namespaces: still denied, with a warning saying why', async () => {
    const a = await validate('default', [APP], { annotations });
    expect(a.response.allowed).toBe(false);
    expect(a.response.warnings).toEqual([expect.stringContaining('ignored: the policy does not allow break-glass in namespace default')]);
  });

  it('is recorded in the outcome with the requesting user', async () => {
    const policy = parsePolicy(policyText);
    const table = new DecisionTable(db.db, policy, createLogger({ logLevel: 'silent' }));
    const review = AdmissionReview.parse(podReview('payments', [APP, NGINX], { annotations, user: 'bob@example.com' }));
    const { outcome } = await admit(review, { decisions: table, policy: () => policy, alerts: null }, false);
    expect(outcome).toMatchObject({ namespace: 'payments', kind: 'Pod', name: 'web', user: 'bob@example.com', result: 'exempted', breakGlass: true, operation: 'CREATE' });
    expect(outcome.images).toMatchObject([
      { image: APP, allowed: false, reason: 'break_glass', mode: 'enforce' },
      { image: NGINX, allowed: true, reason: 'allowed_without_verification' },
    ]);
  });
});

describe('the admission record', () => {
  // The requests above, as the record kept them: each mode's result, the exemption, the break-glass
  // user. Written off the admission path, so polled.
  const recorded = (namespace: string) =>
    db.db.selectFrom('admission_records').select(['result', 'reason', 'break_glass', 'username', 'images']).where('namespace', '=', namespace).orderBy('id').execute();

  it('keeps every answered review with its result, each image with its mode, the exemption and the break-glass user', async () => {
    await expect.poll(async () => (await recorded('ops-1')).length, { timeout: 15_000 }).toBeGreaterThan(0);
    const images = (rows: { images: unknown }[]) => rows.flatMap((r) => r.images as { image: string; allowed: boolean; mode: string; reason: string }[]);
    const warned = await recorded('preview-42');
    expect(warned.map((r) => r.result)).toEqual(['warned']);
    expect(images(warned)).toEqual([expect.objectContaining({ image: APP, allowed: false, mode: 'warn', reason: 'unsigned' })]);
    const audited = await recorded('dev-7');
    expect(audited.map((r) => r.result)).toEqual(['allowed']);
    expect(images(audited)).toEqual([expect.objectContaining({ image: APP, allowed: false, mode: 'audit' })]);
    expect((await recorded('default')).map((r) => r.result)).toContain('denied');
    expect((await recorded('payments')).map((r) => r.result).slice(0, 2)).toEqual(['exempted', 'denied']);
    const glass = await recorded('ops-1');
    expect(glass).toEqual([expect.objectContaining({ result: 'exempted', break_glass: true, username: 'oncall@example.com' })]);
  });
});

describe('signet explain and GraphQL explain', () => {
  const env = () => ({ DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') });

  it('explains the rule, its mode, the scope and each requirement; exit 3 where admission would deny', async () => {
    const denied = await runSignetCli(['explain', APP], env());
    expect(denied.code).toBe(3);
    expect(denied.stdout).toContain('rule         allow_with_verification.registry.test.team/*');
    expect(denied.stdout).toContain('admission    denied');
    expect(denied.stdout).toMatch(/no +signature +1 signer: identity release@example\.com, issuer https:\/\/accounts\.example\.com/);
    const audited = await runSignetCli(['explain', APP, '--namespace', 'dev-7', '--json'], env());
    expect(audited.code).toBe(0);
    expect(JSON.parse(audited.stdout)).toMatchObject({
      image: APP,
      namespace: 'dev-7',
      scope: 'sandbox',
      mode: 'audit',
      indexed: true,
      admission: 'audited',
      decision: { allowed: false, reason: 'unsigned' },
      requirements: [{ kind: 'signature', satisfied: false }],
      exemption: null,
      breakGlassAllowed: false,
    });
    const help = await runSignetCli(['explain', '--help'], env());
    expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining('usage: signet explain') });
  });

  it('answers the same over GraphQL', async () => {
    const res = await signet.app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: `{ explain(image: "${LEGACY}", namespace: "payments") { scope rule mode allowed reason admission indexed requirements { kind } breakGlassAllowed } }` },
    });
    expect(res.json()).toEqual({
      data: {
        explain: {
          scope: 'payments',
          rule: 'scopes.payments.allow_without_verification.registry.test.team/legacy',
          mode: 'ENFORCE',
          allowed: true,
          reason: 'allowed_without_verification',
          admission: 'allowed',
          indexed: false,
          requirements: [],
          breakGlassAllowed: true,
        },
      },
    });
    // Modes are the DecisionMode enum, as on admission records: the sandbox scope audits.
    const audited = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query: `{ explain(image: "${APP}", namespace: "dev-7") { scope mode admission } }` } });
    expect(audited.json()).toEqual({ data: { explain: { scope: 'sandbox', mode: 'AUDIT', admission: 'audited' } } });
    const denials = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ denials { nodes { reason mode } } }' } });
    expect(denials.json()).toEqual({ data: { denials: { nodes: [{ reason: 'UNSIGNED', mode: 'ENFORCE' }] } } });
    const bad = await signet.app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ explain(image: "Not A Ref") { rule } }' } });
    expect(bad.json<{ errors: { extensions: { code: string } }[] }>().errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe('signet audit', () => {
  const pod = (namespace: string, name: string, image: string, annotations: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, annotations },
    spec: { containers: [{ name: 'c', image }] },
  });

  it('lists what each namespace would deny, warn or audit from kubectl get pods -A -o json, and exits 3 when something would be denied', async () => {
    const file = join(tmp, 'pods.json');
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          pod('default', 'web', APP),
          pod('preview-1', 'web', APP),
          pod('dev-1', 'web', APP),
          pod('default', 'proxy', NGINX),
          pod('ops-1', 'fix', APP, { 'signet.dev/break-glass': 'INC-9' }),
        ],
      }),
    );
    const r = await runSignetCli(['audit', file, '--json'], { DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') });
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as { workloads: number; denied: number; findings: unknown[] };
    expect(report).toMatchObject({ workloads: 5, denied: 1 });
    expect(report.findings).toEqual([
      expect.objectContaining({ namespace: 'default', workload: 'Pod/web', image: APP, admission: 'denied', reason: 'unsigned', mode: 'enforce' }),
      expect.objectContaining({ namespace: 'preview-1', admission: 'warned', mode: 'warn' }),
      expect.objectContaining({ namespace: 'dev-1', admission: 'audited', mode: 'audit' }),
      expect.objectContaining({ namespace: 'ops-1', admission: 'break_glass' }),
    ]);
  });

  it('reads multi-document YAML workloads, and a candidate policy with --policy', async () => {
    const manifests = join(tmp, 'deploy.yaml');
    await writeFile(
      manifests,
      `apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: payments }
spec:
  template:
    spec:
      containers: [{ name: api, image: "${LEGACY}" }, { name: side, image: "${APP}" }]
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly }
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{ name: job, image: "${TRIAL}" }]
`,
    );
    const table = await runSignetCli(['audit', manifests], { DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') });
    expect(table.code).toBe(3);
    expect(table.stdout).toContain('2 workload(s)');
    expect(table.stdout).toMatch(/payments +Deployment\/api +registry\.test\/team\/app@sha256:[0-9a-f]+ +denied/);
    expect(table.stdout).toMatch(/default +CronJob\/nightly +registry\.test\/trial\/tool:1\.0 +warned/);
    expect(table.stdout).not.toContain(LEGACY);
    const candidate = join(tmp, 'candidate.yaml');
    await writeFile(candidate, policyText.replace('mode: enforce', 'mode: audit'));
    const relaxed = await runSignetCli(['audit', manifests, '--policy', candidate, '--json'], { DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') });
    expect(relaxed.code).toBe(0);
    expect(JSON.parse(relaxed.stdout)).toMatchObject({ denied: 0, findings: [{ admission: 'audited' }, { admission: 'warned' }] });
  });
});
