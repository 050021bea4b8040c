// What an operator's Prometheus sees: a signed image pushed through a real docker-registry, a
// decision asked, then `/metrics` read as a scraper does. The Grafana dashboard in deploy/ is
// checked against the same output: every series it queries exists.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { runSignetCli } from '../helpers/cli.ts';
import { freePort } from '../helpers/net.ts';
import { namingProblems } from '../helpers/prometheus-naming.ts';
import { pushCosignSignatures } from '../helpers/cosign-push.ts';
import type { TestDb } from '../helpers/db.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import type { RunningRegistry } from '../helpers/registry.ts';
import { eventually, indexJobsEnded, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { simpleSigningPayload, type TestSigstore } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const DASHBOARD = fileURLToPath(new URL('../../deploy/grafana/signet-dashboard.json', import.meta.url));
const MONITORING = fileURLToPath(new URL('../../deploy/kubernetes/monitoring.yaml', import.meta.url));

let db: TestDb;
let registry: RunningRegistry;
let signet: TestSignet;
let sigstore: TestSigstore;
let tmp: string;
let stack: TestStack;

let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  stack = await startTestStack({
    name: 'metrics',
    policy: (host) => policyAllowing(host, ALICE),
    env: () => ({ SIGNET_ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/alerts', SIGNET_METRICS_PORT: String(metricsPort) }),
  });
  ({ db, sigstore, registry, signet, tmp } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

/** Scrapes /metrics as Prometheus does; returns the text and one sample's value by series. */
async function scrape(): Promise<{ text: string; value: (series: string) => number }> {
  const res = await fetch(`${signet.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return {
    text,
    value(series) {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
    },
  };
}

describe('/metrics', () => {
  it('counts the push, the verification, the registry requests, the jobs and the decision', async () => {
    const repo = 'metrics/app';
    const image = await pushRandomImage(registry.url, repo, 'v1');
    await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), ALICE)]);
    const ref = `${registry.host}/${repo}@${image.digest}`;
    await eventually(async () => {
      const res = await signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(ref)}` });
      return res.json<{ allowed: boolean }>().allowed ? true : undefined;
    }, 'the image is allowed');
    await fetch(`${signet.url}/v1/decisions?image=${encodeURIComponent(ref)}`);
    // The decision is published inside the job, which is timed once it returns: under load the
    // scrape could come between the two.
    await eventually(async () => ((await indexJobsEnded(signet, 'indexed')) >= 1 ? true : undefined), 'an index job ended');

    const m = await scrape();
    expect(m.value('signet_webhook_deliveries_total{source="distribution",status="202"}')).toBeGreaterThanOrEqual(2);
    expect(m.value('signet_verifications_total{format="cosign_legacy",kind="signature",outcome="verified"}')).toBeGreaterThanOrEqual(1);
    expect(m.value(`signet_registry_requests_total{registry="${registry.host}",status="200"}`)).toBeGreaterThanOrEqual(2);
    expect(m.value(`signet_registry_requests_total{registry="${registry.host}",status="404"}`)).toBeGreaterThanOrEqual(1);
    expect(m.value('signet_job_duration_seconds_count{job="index-manifest",result="indexed"}')).toBeGreaterThanOrEqual(1);
    expect(m.value('signet_ledger_lag_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(m.value('signet_decision_requests_total{endpoint="/v1/decisions",status="200"}')).toBeGreaterThanOrEqual(2);
    expect(m.value('signet_decision_request_duration_seconds_count{endpoint="/v1/decisions"}')).toBeGreaterThanOrEqual(2);
    expect(m.value('signet_decision_table_entries')).toBeGreaterThanOrEqual(1);
    expect(m.value('signet_decision_table_oldest_entry_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.value('signet_decision_table_stale')).toBe(0);
    expect(m.value('signet_queue_jobs{queue="index",state="completed"}')).toBeGreaterThanOrEqual(1);
    expect(m.value('signet_queue_jobs{queue="alerts",state="waiting"}')).toBe(0);
    expect(m.value('signet_verification_cache_lookups_total{result="miss"}')).toBeGreaterThanOrEqual(1);
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(m.text).toMatch(/^signet_build_info\{version="\d+\.\d+\.\d+",revision="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m);
    expect(namingProblems(m.text)).toEqual([]);
    // What an operator sees, for the closing note.
    console.log(m.text.split('\n').filter((l) => /^signet_(webhook|verifications|registry_requests|decision_requests|queue_jobs\{queue="index",state="(completed|waiting)"|decision_table|ledger_lag_seconds_(count|sum)|verification_cache)/.test(l)).join('\n'));
  });

  it('serves /metrics on the plain-HTTP metrics port too (SIGNET_METRICS_PORT), and nothing else there', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('# TYPE signet_decision_requests_total counter');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/graphql`)).status).toBe(404);
  });

  it('echoes a sane x-request-id and makes one up otherwise', async () => {
    const given = await fetch(`${signet.url}/healthz`, { headers: { 'x-request-id': 'trace-42.a_b' } });
    expect(given.headers.get('x-request-id')).toBe('trace-42.a_b');
    const hostile = await fetch(`${signet.url}/healthz`, { headers: { 'x-request-id': 'a b\u00e9'.repeat(30) } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('counts refused webhooks by status', async () => {
    const before = (await scrape()).value('signet_webhook_deliveries_total{source="distribution",status="401"}');
    const res = await fetch(`${signet.url}/webhooks/distribution`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
    const after = (await scrape()).value('signet_webhook_deliveries_total{source="distribution",status="401"}');
    expect(after).toBe((Number.isNaN(before) ? 0 : before) + 1);
  });

  it('the CLI answers from the same ledger: who-owns and signed-by, tables and --json, with exit codes', async () => {
    const env = { DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') };
    const ref = `${registry.host}/metrics/app:v1`;
    const owns = await runSignetCli(['who-owns', ref], env);
    expect(owns.code, owns.stderr).toBe(0);
    expect(owns.stdout).toMatch(/^127\.0\.0\.1:\d+\/metrics\/app@sha256:[0-9a-f]{64}\ndecision: allow \(verified: signed by alice@example\.com \(allow_with_verification\.127\.0\.0\.1:\d+\.\*\/\*\)\)\nstatus: verified\nowners: alice@example\.com \(https:\/\/accounts\.example\.com\)/);
    expect(owns.stdout).toMatch(/kind\s+outcome\s+signer\s+issuer\s+format\s+rekor\s+signed at/);
    expect(owns.stdout).toMatch(/signature\s+verified\s+alice@example\.com\s+https:\/\/accounts\.example\.com\s+cosign_legacy\s+\d+/);
    const json = JSON.parse((await runSignetCli(['who-owns', ref, '--json'], env)).stdout) as { status: string; owners: unknown[] };
    expect(json).toMatchObject({ status: 'verified', owners: [{ subject: ALICE.email, issuer: ALICE.issuer }] });
    expect((await runSignetCli(['who-owns', `${registry.host}/metrics/nope:v1`], env)).code).toBe(3);
    expect((await runSignetCli(['who-owns', 'not a reference!'], env)).code).toBe(2);

    const by = await runSignetCli(['signed-by', ALICE.email], env);
    expect(by.code, by.stderr).toBe(0);
    expect(by.stdout).toContain(`${ALICE.email} (${ALICE.issuer}): 1 images`);
    expect(by.stdout).toMatch(/metrics\/app@sha256:[0-9a-f]{64}\s+verified/);
    expect((await runSignetCli(['signed-by', 'mallory@example.com'], env)).code).toBe(3);
    console.log(`$ signet who-owns ${ref}\n${owns.stdout}\n$ signet signed-by ${ALICE.email}\n${by.stdout}`);
  });

  it('verify fetches and verifies now, from the registry, and writes nothing', async () => {
    const env = { DATABASE_URL: db.url, SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'), SIGNET_INSECURE_REGISTRIES: registry.host };
    const before = await db.db.selectFrom('signatures').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    const signed = await runSignetCli(['verify', `${registry.host}/metrics/app:v1`], env);
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.stdout).toMatch(/metrics\/app@sha256:[0-9a-f]{64} \(v1\): verified/);
    expect(signed.stdout).toMatch(/signature\s+verified\s+alice@example\.com\s+https:\/\/accounts\.example\.com\s+cosign_legacy\s+\d+/);
    const unsigned = await pushRandomImage(registry.url, 'metrics/unsigned', 'v1');
    const bare = await runSignetCli(['verify', `${registry.host}/metrics/unsigned@${unsigned.digest}`, '--json'], env);
    expect(bare.code).toBe(1);
    expect(JSON.parse(bare.stdout)).toMatchObject({ verified: false, signatures: [] });
    expect((await runSignetCli(['verify', `${registry.host}/metrics/none:v1`], env)).code).toBe(3);
    const after = await db.db.selectFrom('signatures').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });

  it('policy dry-run says which images a new policy would deny, and why, without changing anything', async () => {
    const env = { DATABASE_URL: db.url, SIGNET_POLICY: join(tmp, 'policy.yaml') };
    const stricter = join(tmp, 'stricter.yaml');
    await writeFile(stricter, `allow_with_verification:\n  "${registry.host}":\n    "*/*":\n      certificate-identity: bob@example.com\n      certificate-oidc-issuer: ${ALICE.issuer}\n`);
    const before = await db.db.selectFrom('decisions').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    const dry = await runSignetCli(['policy', 'dry-run', stricter], env);
    expect(dry.code, dry.stderr).toBe(3);
    expect(dry.stdout).toMatch(/\d+ images decided under .*: 1 would be denied, 0 would be allowed/);
    expect(dry.stdout).toMatch(/allow → deny\nimage\s+reason\s+why\n-+.*\n127\.0\.0\.1:\d+\/metrics\/app@sha256:[0-9a-f]{64}\s+\w+\s+.*alice@example\.com/);
    const json = JSON.parse((await runSignetCli(['policy', 'dry-run', stricter, '--json'], env)).stdout) as { allowToDeny: { image: string }[] };
    expect(json.allowToDeny).toHaveLength(1);
    expect((await runSignetCli(['policy', 'dry-run', join(tmp, 'policy.yaml')], env)).code).toBe(0);
    const after = await db.db.selectFrom('decisions').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
    console.log(`$ signet policy dry-run stricter.yaml\n${dry.stdout}`);
  });

  it('the Grafana dashboard and the alert rules query only series Signet exports', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const rules = parseAllDocuments(readFileSync(MONITORING, 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec: { groups: { rules: { expr: string }[] }[] } })
      .filter((d) => d.kind === 'PrometheusRule')
      .flatMap((d) => d.spec.groups.flatMap((g) => g.rules.map((r) => r.expr)));
    const { text } = await scrape();
    const exported = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]!));
    const names = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...rules].flatMap((e) => e.match(/\b(signet|process|nodejs)_[a-z0-9_]+/g) ?? []);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      expect(exported.has(name) || exported.has(base), `${name} is not exported`).toBe(true);
    }
  });
});
