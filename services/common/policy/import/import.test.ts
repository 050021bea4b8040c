import { generateKeyPairSync, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readFixture } from '../../../../test/helpers/fixtures.ts';
import type { AttestationFact, ManifestFacts, SignatureFact } from '../../domain/decision.ts';
import { decide } from '../evaluate.ts';
import { parsePolicy } from '../policy.ts';
import { importPolicies, PolicyImportError } from './import.ts';

const REGISTRY = { registries: ['registry.example.com'] };
const sample = (path: string) => readFixture(`policy-import/${path}`).toString('utf8');
const importSample = (path: string, opts = REGISTRY) => importPolicies(sample(path), opts);

const GH = 'https://token.actions.githubusercontent.com';
const TESTER = 'https://github.com/sigstore/policy-controller/.github/workflows/policy-tester-examples.yml@refs/heads/main';

/**
 * Every published sample: which registry hosts and path globs the Signet policy gets, and what is
 * listed as not expressed (by a fragment of each message). `null` rules: nothing could be written.
 */
const SAMPLES: [string, Record<string, string[]> | null, string[]][] = [
  ['policy-controller/allow-only-pods.yaml', { 'allow:ghcr.io': ['sigstore/timestamp-server**'] }, ['spec.policy: a CUE/Rego policy over the admitted object']],
  ['policy-controller/custom-key-attestation-sbom-spdxjson.yaml', { 'registry.example.com': ['**'] }, []],
  ['policy-controller/keyless-attestation-sbom-spdxjson.yaml', { 'registry.example.com': ['**'] }, []],
  ['policy-controller/release-signed-by-github-actions.yaml', { 'gcr.io': ['projectsigstore/policy-webhook'] }, ['pinned to sha256:d1e7af59']],
  ['policy-controller/signed-by-aws-kms-key.yaml', null, ['a KMS key']],
  ['policy-controller/signed-by-gcp-kms-key.yaml', null, ['a KMS key']],
  ['policy-controller/signed-by-github-actions.yaml', { 'registry.example.com': ['**'] }, []],
  ['kyverno/00-check-image.yaml', { 'ghcr.io': ['kyverno/test-verify-image*'] }, ["Kyverno's * also crosses '/'"]],
  ['kyverno/01-sigstore-attestation-verification.yaml', { 'registry.example.com': ['**'] }, ['Kyverno checks the attestations alone']],
  ['kyverno/02-exclude-refs.yaml', { 'ghcr.io': ['**'], 'allow:ghcr.io': ['trusted/**'] }, ['skipped images are written as allowed without verification']],
  ['kyverno/03-attest-code-review.yaml', { 'registry.io': ['org/app*'] }, ["Kyverno's * also crosses '/'", 'Kyverno checks the attestations alone']],
  ['kyverno/04-check-image.yaml', null, ['only tag signed-cert', 'certificate (non-Fulcio) signers', 'no signer Signet can express']],
  ['kyverno/05-check-image.yaml', null, ['only tag signed-cert', 'certificate (non-Fulcio) signers', 'no signer Signet can express']],
  ['kyverno/06-verify-image.yaml', null, ['pinned to sha256:ae0563a2', 'certificate (non-Fulcio) signers', 'no signer Signet can express']],
  ['kyverno/07-check-image-keyless.yaml', { 'ghcr.io': ['kyverno/test-verify-image'] }, ['only tag signed-keyless']],
  ['kyverno/08-check-image-keyless.yaml', { 'ghcr.io': ['kyverno/test-verify-image'] }, ['only tag signed-keyless']],
  ['kyverno/10-check-image.yaml', { 'ghcr.io': ['myorg/myimage*'] }, ["Kyverno's * also crosses '/'"]],
  ['kyverno/18-keyed-tsa-policy.yaml', { 'ghcr.io': ['kyverno/test-verify-image'] }, ['trust material (a TSA chain, a CT key)']],
  ['kyverno/19-signed-task-image.yaml', { 'registry.example.com': ['**'] }, ['custom extractors', 'required: false']],
  ['kyverno/20-signed-pipeline-bundle.yaml', { 'registry.example.com': ['**'] }, ['custom extractors']],
];

describe('signet policy import: the published samples', () => {
  it.each(SAMPLES)('%s', (path, rules, unexpressed) => {
    const r = importSample(path);
    const got: Record<string, string[]> = {};
    for (const [host, globs] of Object.entries(r.policy.allow_with_verification ?? {})) {
      got[host] = Object.keys(globs);
    }
    for (const [host, globs] of Object.entries(r.policy.allow_without_verification ?? {})) {
      got[`allow:${host}`] = globs;
    }
    expect(rules === null ? r.yaml : got).toEqual(rules === null ? '' : rules);
    expect(r.unexpressed).toHaveLength(unexpressed.length);
    unexpressed.forEach((fragment, i) => expect(r.unexpressed[i]).toContain(fragment));
    if (r.yaml !== '') {
      // What is written is a policy Signet loads, with the same meaning when loaded again.
      expect(parsePolicy(r.yaml).version).toMatch(/^sha256:/);
    }
  });

  it('a pattern for every registry needs --registry; without it nothing is written and it says so', () => {
    const r = importSample('policy-controller/signed-by-github-actions.yaml', { registries: [] });
    expect(r.yaml).toBe('');
    expect(r.unexpressed).toEqual([expect.stringContaining('matches every registry; Signet\'s policy is keyed by registry host: import again with --registry')]);
  });

  it('refuses input that is not one of the peer policies, and YAML that is not YAML', () => {
    expect(() => importPolicies('apiVersion: v1\nkind: ConfigMap\n', REGISTRY)).toThrow(PolicyImportError);
    expect(() => importPolicies('a: [', REGISTRY)).toThrow(/not YAML/);
    expect(() => importPolicies('', REGISTRY)).toThrow(/no policy/);
  });

  it('a keyless authority without identities is not written: no Signet rule accepts anyone', () => {
    const text = 'apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: signed-keyless}\nspec:\n  images: [{glob: "**"}]\n  authorities:\n    - keyless: {url: https://fulcio.sigstore.dev}\n      ctlog: {url: https://rekor.sigstore.dev}\n';
    const r = importPolicies(text, REGISTRY);
    expect(r.yaml).toBe('');
    expect(r.unexpressed).toEqual([expect.stringContaining('no identities: it accepts anyone')]);
  });
});

function keyless(subject: string, issuer: string): SignatureFact {
  return { outcome: 'verified', reason: null, identity: { kind: subject.includes('@') && !subject.includes('://') ? 'email' : 'uri', subject, issuer }, claims: {}, keyFingerprint: null, tlog: true, annotations: null };
}

function keyed(fingerprint: string): SignatureFact {
  return { outcome: 'verified', reason: null, identity: { kind: 'key', subject: fingerprint, issuer: null }, claims: {}, keyFingerprint: fingerprint, tlog: true, annotations: null };
}

function facts(repository: string, signatures: SignatureFact[], attestations: AttestationFact[] = [], registry = 'registry.example.com'): ManifestFacts {
  return { registry, repository, status: 'verified', signatures, attestations };
}

function attestation(sig: SignatureFact, predicateType: string, predicate: object): AttestationFact {
  return { ...sig, predicateType, signedAt: new Date(), statement: { _type: 'https://in-toto.io/Statement/v1', subject: [], predicateType, predicate } };
}

describe('signet policy import: the imported policies decide as the samples do', () => {
  it("policy-controller's keyless sample admits its workflow's signature and nobody else's", () => {
    const p = parsePolicy(importSample('policy-controller/signed-by-github-actions.yaml').yaml);
    expect(decide(p, 'registry.example.com', 'any/image', facts('any/image', [keyless(TESTER, GH)]))).toMatchObject({ allowed: true });
    expect(decide(p, 'registry.example.com', 'any/image', facts('any/image', [keyless(TESTER.replace('main', 'evil'), GH)]))).toMatchObject({ allowed: false, reason: 'identity_mismatch' });
  });

  it("policy-controller's SBOM sample requires an SPDX attestation, its CUE carried over as CEL", () => {
    const r = importSample('policy-controller/keyless-attestation-sbom-spdxjson.yaml');
    expect(r.policy.allow_with_verification?.['registry.example.com']?.['**']?.attestations).toEqual([
      { name: 'must-have-spdxjson', 'predicate-type': 'spdxjson', condition: 'statement.predicateType == "https://spdx.dev/Document"' },
    ]);
    const p = parsePolicy(r.yaml);
    const sig = keyless(TESTER, GH);
    expect(decide(p, 'registry.example.com', 'a/b', facts('a/b', [sig]))).toMatchObject({ allowed: false, reason: 'attestation_missing' });
    expect(decide(p, 'registry.example.com', 'a/b', facts('a/b', [sig], [attestation(sig, 'https://spdx.dev/Document', {})]))).toMatchObject({ allowed: true });
  });

  it("Kyverno's code-review sample: its conditions (Equals, AnyIn) as CEL over the predicate", () => {
    const r = importSample('kyverno/03-attest-code-review.yaml');
    const p = parsePolicy(r.yaml);
    const [, pem] = /(-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----)/.exec(sample('kyverno/03-attest-code-review.yaml').replace(/\n\s+/g, '\n'))!;
    const fingerprint = `sha256:${createHash('sha256').update(Buffer.from(pem!.replace(/-----[^-]+-----|\s/g, ''), 'base64')).digest('hex')}`;
    const sig = keyed(fingerprint);
    const review = (reviewers: string[], branch = 'main') => attestation(sig, 'https://example.com/CodeReview/v1', { author: 'alice@example.com', repo: { branch, type: 'git', uri: 'https://git-repo.com/org/app' }, reviewers });
    expect(decide(p, 'registry.io', 'org/app', facts('org/app', [sig], [review(['bob@example.com'])], 'registry.io'))).toMatchObject({ allowed: true });
    expect(decide(p, 'registry.io', 'org/app', facts('org/app', [sig], [review(['mallory@example.com'])], 'registry.io'))).toMatchObject({ allowed: false, reason: 'attestation_failed' });
    expect(decide(p, 'registry.io', 'org/app', facts('org/app', [sig], [review(['bob@example.com'], 'dev')], 'registry.io'))).toMatchObject({ allowed: false, reason: 'attestation_failed' });
  });

  it("Kyverno's wildcard subject and regexps mean what they mean there", () => {
    const wildcard = parsePolicy(importSample('kyverno/07-check-image-keyless.yaml').yaml);
    const ask = (p: typeof wildcard, subject: string, issuer: string) => decide(p, 'ghcr.io', 'kyverno/test-verify-image', facts('kyverno/test-verify-image', [keyless(subject, issuer)], [], 'ghcr.io')).allowed;
    expect(ask(wildcard, 'jim@nirmata.com', 'https://accounts.google.com')).toBe(true);
    expect(ask(wildcard, 'jim@nirmata.com.evil', 'https://accounts.google.com')).toBe(false);
    const regexp = parsePolicy(importSample('kyverno/08-check-image-keyless.yaml').yaml);
    // Kyverno matches subjectRegExp anywhere in the value, as Go's MatchString does.
    expect(ask(regexp, 'https://github.com/acme/app/.github/workflows/r.yml@refs/heads/main', GH)).toBe(true);
    expect(ask(regexp, 'x https://github.com/acme', GH)).toBe(true);
    expect(ask(regexp, 'alice@example.com', GH)).toBe(false);
  });

  it('several key entries become k-of-n keys (count), one keyless entry a keyless rule', () => {
    const pems = [0, 1, 2].map(() => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString().trim());
    const entries = pems.map((k) => `          - keys:\n              publicKeys: |-\n${k.split('\n').map((l) => `                ${l}`).join('\n')}`).join('\n');
    const text = `apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: two-of-three}\nspec:\n  rules:\n  - name: r\n    verifyImages:\n    - imageReferences: ["ghcr.io/acme/*"]\n      attestors:\n      - count: 2\n        entries:\n${entries}\n`;
    const r = importPolicies(text, REGISTRY);
    expect(r.unexpressed).toEqual([]);
    expect(r.policy.allow_with_verification?.['ghcr.io']?.['acme/**']).toMatchObject({ key: pems, threshold: 2 });
  });
});

describe('signet policy import: modes and namespaces (rollout controls)', () => {
  const GOOGLE = 'https://accounts.google.com';
  const kyverno = (kind: string, meta: string, spec: string, entry: string) =>
    `apiVersion: kyverno.io/v1\nkind: ${kind}\nmetadata: {${meta}}\nspec:\n${spec}  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: ["ghcr.io/acme/*"]\n${entry}      attestors:\n      - entries:\n        - keyless: {subject: alice@example.com, issuer: "${GOOGLE}"}\n`;

  it("policy-controller's mode: warn becomes the rule's mode, no longer listed as not expressed", () => {
    const text = sample('policy-controller/signed-by-github-actions.yaml').replace('spec:\n', 'spec:\n  mode: warn\n');
    const r = importPolicies(text, REGISTRY);
    expect(r.unexpressed).toEqual([]);
    const p = parsePolicy(r.yaml);
    expect(decide(p, 'registry.example.com', 'acme/app', facts('acme/app', [keyless('mallory@evil.example', GH)]))).toMatchObject({ allowed: false, mode: 'warn' });
    expect(decide(p, 'registry.example.com', 'acme/app', facts('acme/app', [keyless(TESTER, GH)]))).toMatchObject({ allowed: true, mode: 'warn' });
    const enforced = importPolicies(text.replace('mode: warn', 'mode: enforce'), REGISTRY);
    expect(enforced.unexpressed).toEqual([]);
    expect(decide(parsePolicy(enforced.yaml), 'registry.example.com', 'acme/app', facts('acme/app', []))).toMatchObject({ mode: 'enforce' });
    expect(importPolicies(text.replace('mode: warn', 'mode: dryrun'), REGISTRY).unexpressed).toEqual([expect.stringContaining('dryrun: not a policy-controller mode')]);
  });

  it("Kyverno's Audit (policy-wide or per entry, with emitWarning) becomes audit or warn; Enforce stays enforce", () => {
    const mode = (text: string) => {
      const r = importPolicies(text, REGISTRY);
      expect(r.unexpressed).toEqual([]);
      return decide(parsePolicy(r.yaml), 'ghcr.io', 'acme/app', facts('acme/app', [], [], 'ghcr.io')).mode;
    };
    expect(mode(kyverno('ClusterPolicy', 'name: p', '  validationFailureAction: Audit\n', ''))).toBe('audit');
    expect(mode(kyverno('ClusterPolicy', 'name: p', '', '      failureAction: Audit\n'))).toBe('audit');
    expect(mode(kyverno('ClusterPolicy', 'name: p', '  emitWarning: true\n', '      failureAction: Audit\n'))).toBe('warn');
    // A rule's own failureAction overrides the policy's.
    expect(mode(kyverno('ClusterPolicy', 'name: p', '  validationFailureAction: Audit\n', '      failureAction: Enforce\n'))).toBe('enforce');
    expect(mode(kyverno('ClusterPolicy', 'name: p', '', '      failureAction: Enforce\n'))).toBe('enforce');
  });

  it("a namespaced Kyverno Policy becomes a scope of its namespace; the same pattern cluster-wide is listed", () => {
    const r = importPolicies(kyverno('Policy', 'name: p, namespace: payments', '', '      failureAction: Audit\n'), REGISTRY);
    expect(r.unexpressed).toEqual([]);
    expect(r.policy.scopes?.payments).toMatchObject({ namespaces: ['payments'], allow_with_verification: { 'ghcr.io': { 'acme/**': { mode: 'audit' } } } });
    expect(r.policy.allow_with_verification).toBeUndefined();
    const p = parsePolicy(r.yaml);
    const d = decide(p, 'ghcr.io', 'acme/app', facts('acme/app', [keyless('alice@example.com', GOOGLE)], [], 'ghcr.io'));
    // Outside the namespace no rule covers the image (Kyverno would not check it there; Signet denies what no rule allows).
    expect(d).toMatchObject({ allowed: false, reason: 'not_covered_by_policy', mode: 'enforce' });
    expect(d.scoped?.payments).toMatchObject({ allowed: true, reason: 'verified', rule: 'scopes.payments.allow_with_verification.ghcr.io.acme/**', mode: 'audit' });

    const both = importPolicies(`${kyverno('ClusterPolicy', 'name: c', '', '')}---\n${kyverno('Policy', 'name: p', '', '')}`, REGISTRY);
    expect(both.policy.scopes?.default?.namespaces).toEqual(['default']);
    expect(both.unexpressed).toEqual([expect.stringContaining('scopes.default: ghcr.io/acme/** has a rule in the cluster-wide policies too')]);
    expect(parsePolicy(both.yaml).scopes.map((s) => s.name)).toEqual(['default']);
  });
});
