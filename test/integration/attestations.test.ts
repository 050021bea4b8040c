// Attestation requirements end to end: images pushed to a real docker-registry with test-signer
// signatures and attestations (cosign `.att` layers and Sigstore bundle referrers), decided at
// push time from the stored statements; SLSA provenance, SBOM and vulnerability-scan examples;
// a scan-age condition whose decision expires and is decided again by the delayed job; GraphQL,
// `policy dry-run`, and a policy change decided from stored statements with the registry gone.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { pushBundleReferrer, pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import { runSignetCli } from '../helpers/cli.ts';
import { OCI_MANIFEST, type PushedImage, pushRandomImage } from '../helpers/oci-push.ts';
import { eventually } from '../helpers/signet.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';
import { inTotoStatement, simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const BUILDER = { uri: 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0', issuer: 'https://token.actions.githubusercontent.com' };
const SLSA_V1 = 'https://slsa.dev/provenance/v1';
const SPDX = 'https://spdx.dev/Document';
const CYCLONEDX = 'https://cyclonedx.org/bom';
const VULN = 'https://cosign.sigstore.dev/attestation/vuln/v1';
/** How long the `fresh/*` rule's scans count: long enough to see the allow, short enough to see it expire. */
const FRESH_SECONDS = 40;

function rule(pattern: string, attestations: string): string {
  return `    "${pattern}":
      certificate-identity: ${ALICE.email}
      certificate-oidc-issuer: ${ALICE.issuer}
      attestations:
${attestations}`;
}

const PROVENANCE = `        - name: provenance
          predicate-type: slsaprovenance1
          certificate-identity-regexp: ^https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/.+$
          certificate-oidc-issuer: https://token.actions.githubusercontent.com
          condition:
            - predicate.runDetails.builder.id == 'https://github.com/actions/runner'
            - predicate.buildDefinition.externalParameters.workflow.repository == 'https://github.com/acme/app'
            - predicate.buildDefinition.externalParameters.workflow.ref.matches('^refs/tags/')`;
const SBOM = `        - name: sbom
          predicate-type: [spdxjson, cyclonedx]`;
const scanRequirement = (age: string) => `        - name: scan
          predicate-type: vuln
          condition: >-
            now - timestamp(predicate.metadata.scanFinishedOn) < duration('${age}') &&
            !predicate.scanner.result.exists(r, r.severity == 'CRITICAL')`;

function policy(host: string, extra = ''): string {
  return [
    'allow_with_verification:',
    `  "${host}":`,
    rule('prov/*', PROVENANCE),
    rule('sbom/*', SBOM),
    rule('scan/*', scanRequirement('168h')),
    rule('fresh/*', scanRequirement(`${FRESH_SECONDS}s`)),
    extra,
    '',
  ].join('\n');
}

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ name: 'attestations', policy: (host) => policy(host) });
});

afterAll(async () => {
  await stack?.stop();
});

interface Answer {
  allowed: boolean;
  reason: string;
  message: string;
  expiresAt: string | null;
  policyVersion: string;
}

async function ask(repo: string, digest: Digest): Promise<Answer> {
  const res = await stack.signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`${stack.host}/${repo}@${digest}`)}` });
  return res.json();
}

function until(repo: string, digest: Digest, want: Partial<Answer>, timeoutMs?: number): Promise<Answer> {
  return eventually(
    async () => {
      const a = await ask(repo, digest);
      return Object.entries(want).every(([k, v]) => a[k as keyof Answer] === v) ? a : undefined;
    },
    `${repo}@${digest} answers ${JSON.stringify(want)}`,
    timeoutMs,
  );
}

/** Pushes an image signed by ALICE, with the given attestations as one cosign `.att`. */
async function signedImage(repo: string, attestations: { type: string; predicate: object; by?: typeof BUILDER }[]): Promise<Digest> {
  return (await signedImageWithBytes(repo, attestations)).digest;
}

async function signedImageWithBytes(repo: string, attestations: { type: string; predicate: object; by?: typeof BUILDER }[]): Promise<PushedImage> {
  const { registry, sigstore } = stack;
  const image = await pushRandomImage(registry.url, repo, 'v1');
  await pushCosignSignatures(registry.url, repo, image.digest, [await sigstore.signKeyless(simpleSigningPayload(`${registry.host}/${repo}`, image.digest), ALICE)]);
  if (attestations.length > 0) {
    const layers = await Promise.all(attestations.map((a) => sigstore.attestKeyless(inTotoStatement(image.digest, a.type, a.predicate), a.by ?? ALICE)));
    await pushCosignAttestations(registry.url, repo, image.digest, layers);
  }
  return image;
}

const slsa = (ref: string) => ({
  buildDefinition: {
    buildType: 'https://actions.github.io/buildtypes/workflow/v1',
    externalParameters: { workflow: { ref, repository: 'https://github.com/acme/app', path: '.github/workflows/release.yml' } },
  },
  runDetails: { builder: { id: 'https://github.com/actions/runner' } },
});
const scan = (finished: Date, severities: string[]) => ({
  invocation: { uri: 'https://github.com/acme/app/actions/runs/1' },
  scanner: { uri: 'pkg:github/aquasecurity/trivy@v0.58.0', version: '0.58.0', result: severities.map((severity, i) => ({ id: `CVE-2026-${1000 + i}`, severity })) },
  metadata: { scanStartedOn: finished.toISOString(), scanFinishedOn: finished.toISOString() },
});

async function graphqlDecision(repo: string, digest: Digest) {
  const query = `{ image(ref: "${stack.host}/${repo}@${digest}") { decision { allowed reason expiresAt attestations { requirement predicateTypes satisfied reason message expiresAt } } } }`;
  const res = await fetch(`${stack.signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data: { image: { decision: { allowed: boolean; attestations: { requirement: string; satisfied: boolean; reason: string; message: string }[] } } } };
  return body.data.image.decision;
}

/** GraphQL `explain` (what `signet explain` shows): it loads the attestations the policy names, as the decider does. */
async function graphqlExplain(repo: string, digest: Digest) {
  const query = `{ explain(image: "${stack.host}/${repo}@${digest}") { allowed reason requirements { kind satisfied detail } attestations { requirement satisfied reason } } }`;
  const res = await fetch(`${stack.signet.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data: { explain: { allowed: boolean; reason: string; requirements: object[]; attestations: object[] } } };
  return body.data.explain;
}

describe('attestation requirements through a real registry', () => {
  it('SLSA provenance built by actions/runner from acme/app on a tag admits; built from a branch it denies, naming the requirement', async () => {
    const tagged = await signedImage('prov/app', [{ type: SLSA_V1, predicate: slsa('refs/tags/v1.0.0'), by: BUILDER }]);
    await until('prov/app', tagged, { allowed: true, reason: 'verified' });
    const branch = await signedImage('prov/branch', [{ type: SLSA_V1, predicate: slsa('refs/heads/main'), by: BUILDER }]);
    const denied = await until('prov/branch', branch, { reason: 'attestation_failed' });
    expect(denied.allowed).toBe(false);
    expect(denied.message).toContain('attestation requirement provenance');
    expect(denied.message).toContain("matches('^refs/tags/') is false");
    const gql = await graphqlDecision('prov/branch', branch);
    expect(gql).toMatchObject({ allowed: false, reason: 'ATTESTATION_FAILED', expiresAt: null, attestations: [{ requirement: 'provenance', predicateTypes: [SLSA_V1], satisfied: false, reason: 'CONDITION_FAILED' }] });
    expect((await graphqlDecision('prov/app', tagged)).attestations).toEqual([expect.objectContaining({ satisfied: true, reason: 'SATISFIED', message: expect.stringContaining(BUILDER.uri) })]);
    // explain agrees with the stored decision, requirement by requirement.
    expect(await graphqlExplain('prov/branch', branch)).toMatchObject({
      allowed: false,
      reason: 'attestation_failed',
      requirements: [{ kind: 'signature', satisfied: true }, { kind: 'attestation', satisfied: false, detail: expect.stringContaining("matches('^refs/tags/') is false") }],
      attestations: [{ requirement: 'provenance', satisfied: false, reason: 'CONDITION_FAILED' }],
    });
    expect(await graphqlExplain('prov/app', tagged)).toMatchObject({ allowed: true, requirements: [{ satisfied: true }, { kind: 'attestation', satisfied: true }], attestations: [{ reason: 'SATISFIED' }] });
  });

  it('an SPDX SBOM (.att) or a CycloneDX one (bundle referrer) admits; a signed image without an SBOM is denied as missing it', async () => {
    const spdx = await signedImage('sbom/spdx', [{ type: SPDX, predicate: { spdxVersion: 'SPDX-2.3', name: 'app', packages: [] } }]);
    await until('sbom/spdx', spdx, { allowed: true });
    const cdx = await signedImageWithBytes('sbom/cdx', []);
    const bundle = await stack.sigstore.signDsseBundle(inTotoStatement(cdx.digest, CYCLONEDX, { bomFormat: 'CycloneDX', specVersion: '1.6', components: [] }), ALICE);
    await pushBundleReferrer(stack.registry.url, 'sbom/cdx', { digest: cdx.digest, mediaType: OCI_MANIFEST, size: cdx.bytes.length }, bundle, CYCLONEDX);
    await until('sbom/cdx', cdx.digest, { allowed: true });
    const none = await signedImage('sbom/none', []);
    const missing = await until('sbom/none', none, { reason: 'attestation_missing' });
    expect(missing.message).toMatch(/attestation requirement sbom .*no https:\/\/spdx\.dev\/Document or https:\/\/cyclonedx\.org\/bom attestation/);
  });

  it('a vulnerability scan newer than 7 days with no critical finding admits, with the expiry of its age; a critical finding denies', async () => {
    const finished = new Date(Date.now() - 60_000);
    const clean = await signedImage('scan/clean', [{ type: VULN, predicate: scan(finished, ['HIGH', 'LOW']) }]);
    const ok = await until('scan/clean', clean, { allowed: true });
    expect(ok.expiresAt).toBe(new Date(finished.getTime() + 7 * 24 * 3600_000).toISOString());
    const critical = await signedImage('scan/critical', [{ type: VULN, predicate: scan(finished, ['HIGH', 'CRITICAL']) }]);
    await until('scan/critical', critical, { reason: 'attestation_failed' });
  });

  it('a decision whose scan ages out expires and is decided again by the worker at its expiry', async () => {
    const finished = new Date();
    const digest = await signedImage('fresh/app', [{ type: VULN, predicate: scan(finished, []) }]);
    const allowed = await until('fresh/app', digest, { allowed: true }, FRESH_SECONDS * 1000);
    expect(allowed.expiresAt).toBe(new Date(finished.getTime() + FRESH_SECONDS * 1000).toISOString());
    // The stored decision itself flips: the delayed job decided it again (not only the API's refusal
    // of an allow past its expiry).
    const stored = await eventually(
      async () => {
        const row = await stack.db.db
          .selectFrom('decisions as d')
          .innerJoin('manifests as m', 'm.id', 'd.manifest_id')
          .select(['d.allowed', 'd.reason', 'd.decided_at', 'd.attestations'])
          .where('m.digest', '=', digest)
          .where('d.policy_version', '=', allowed.policyVersion)
          .executeTakeFirst();
        return row?.allowed === false ? row : undefined;
      },
      'the stored decision flips to deny',
      (FRESH_SECONDS + 30) * 1000,
    );
    expect(stored.reason).toBe('attestation_failed');
    expect(stored.decided_at.getTime()).toBeGreaterThanOrEqual(Date.parse(allowed.expiresAt!));
    expect(stored.attestations).toEqual([expect.objectContaining({ requirement: 'scan', reason: 'condition_failed' })]);
    await until('fresh/app', digest, { allowed: false, reason: 'attestation_failed' });
  }, 120_000);

  it('policy dry-run names the requirement a new policy would fail, and changes nothing', async () => {
    const stricter = join(stack.tmp, 'stricter.yaml');
    // sbom/* now also requires provenance, which neither SBOM image has.
    await writeFile(stricter, policy(stack.host).replace(SBOM, `${SBOM}\n${PROVENANCE}`));
    const env = { DATABASE_URL: stack.db.url, SIGNET_POLICY: join(stack.tmp, 'policy.yaml') };
    const count = () => stack.db.db.selectFrom('decisions').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    const before = await count();
    const dry = await runSignetCli(['policy', 'dry-run', stricter, '--json'], env);
    expect(dry.code, dry.stderr).toBe(3);
    const json = JSON.parse(dry.stdout) as { allowToDeny: { image: string; reason: string; attestations: { requirement: string; reason: string }[] }[] };
    const sbomImages = json.allowToDeny.filter((f) => f.image.includes('/sbom/'));
    expect(sbomImages.length).toBe(2);
    for (const flip of sbomImages) {
      expect(flip).toMatchObject({ reason: 'attestation_missing', attestations: [{ requirement: 'provenance', reason: 'missing' }] });
    }
    const table = await runSignetCli(['policy', 'dry-run', stricter], env);
    expect(table.stdout).toMatch(/sbom\/spdx@sha256:[0-9a-f]{64}\s+attestation_missing\s+attestation requirement provenance/);
    expect(await count()).toEqual(before);
  });

  it('a policy change is decided from the stored statements, with the registry gone', async () => {
    const spdx = (await stack.db.db.selectFrom('manifests as m').innerJoin('repositories as r', 'r.id', 'm.repository_id').select('m.digest').where('r.name', '=', 'sbom/spdx').executeTakeFirstOrThrow()).digest;
    await stack.registry.stop();
    // sbom/* now also needs a CycloneDX SBOM with at least one component: the SPDX image no longer qualifies.
    await writeFile(join(stack.tmp, 'policy.yaml'), policy(stack.host).replace('[spdxjson, cyclonedx]', "cyclonedx\n          condition: size(predicate.components) > 0"));
    await stack.signet.reloadPolicy();
    const denied = await until('sbom/spdx', spdx, { reason: 'attestation_missing' });
    expect(denied.message).toContain('no https://cyclonedx.org/bom attestation');
  });
});
