import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { AttestationFact, ManifestFacts, SignatureFact } from '../domain/decision.ts';
import { compileCondition, type CompiledCondition } from './cel.ts';
import { checkPolicyText } from './check.ts';
import { attestationChecks, decide } from './evaluate.ts';
import { explain } from './explain.ts';
import { nextChange, requiredPredicateTypes } from './attestations.ts';
import { parsePolicy, PolicyConfigError } from './policy.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const BUILDER = {
  subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0',
  issuer: 'https://token.actions.githubusercontent.com',
};
const NOW = new Date('2026-11-29T12:00:00Z');

/** A policy whose rule for `acme/app` takes ALICE's signature plus `attestations` (YAML lines, indented under the rule). */
function policyWith(attestations: string): string {
  return [
    'allow_with_verification:',
    '  registry.example.com:',
    '    acme/app:',
    `      certificate-identity: ${ALICE.email}`,
    `      certificate-oidc-issuer: ${ALICE.issuer}`,
    '      attestations:',
    attestations,
    '',
  ].join('\n');
}

const PROVENANCE = policyWith(`        - name: provenance
          predicate-type: slsaprovenance1
          certificate-identity-regexp: ^https://github\\.com/acme/app/\\.github/workflows/.+@refs/tags/.+$
          certificate-oidc-issuer: https://token.actions.githubusercontent.com
          condition:
            - predicate.runDetails.builder.id == 'https://github.com/actions/runner'
            - predicate.buildDefinition.externalParameters.workflow.repository == 'https://github.com/acme/app'
            - predicate.buildDefinition.externalParameters.workflow.ref.startsWith('refs/tags/')`);
const SBOM = policyWith(`        - name: sbom
          predicate-type: [spdxjson, cyclonedx]`);
const SCAN = policyWith(`        - name: scan
          predicate-type: vuln
          condition: >-
            now - timestamp(predicate.metadata.scanFinishedOn) < duration('168h') &&
            !predicate.scanner.result.exists(r, r.severity == 'CRITICAL')`);

function signature(): SignatureFact {
  return { outcome: 'verified', reason: null, identity: { kind: 'email', subject: ALICE.email, issuer: ALICE.issuer }, claims: {}, keyFingerprint: null, tlog: true, annotations: null };
}

function attestation(predicateType: string, predicate: object, signer: { subject: string; issuer: string } = { subject: ALICE.email, issuer: ALICE.issuer }, extra: Partial<AttestationFact> = {}): AttestationFact {
  return {
    predicateType,
    outcome: 'verified',
    reason: null,
    identity: { kind: signer.subject.includes('://') ? 'uri' : 'email', subject: signer.subject, issuer: signer.issuer },
    claims: {},
    keyFingerprint: null,
    tlog: true,
    signedAt: new Date('2026-11-28T00:00:00Z'),
    statement: { _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'image', digest: { sha256: 'a'.repeat(64) } }], predicateType, predicate },
    ...extra,
  };
}

function facts(attestations: AttestationFact[]): ManifestFacts {
  return { registry: 'registry.example.com', repository: 'acme/app', status: 'verified', signatures: [signature()], attestations };
}

const slsa = (ref: string, builder = 'https://github.com/actions/runner') => ({
  buildDefinition: { externalParameters: { workflow: { repository: 'https://github.com/acme/app', ref, path: '.github/workflows/release.yml' } } },
  runDetails: { builder: { id: builder } },
});
const scan = (finished: string, severities: string[]) => ({
  scanner: { uri: 'pkg:github/aquasecurity/trivy', result: severities.map((severity, i) => ({ id: `CVE-2026-${i}`, severity })) },
  metadata: { scanStartedOn: finished, scanFinishedOn: finished },
});

describe('attestation requirements: parsing', () => {
  it("resolves cosign's predicate shorthands and keeps URIs as they are", () => {
    const p = parsePolicy(policyWith(`        - predicate-type: [slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, vuln, openvex, custom, link, https://example.com/custom/v1]`));
    expect(p.withVerification.get('registry.example.com')![0]!.attestations[0]).toMatchObject({
      name: 'attestations.0',
      predicateTypes: [
        'https://slsa.dev/provenance/v0.2',
        'https://slsa.dev/provenance/v1',
        'https://spdx.dev/Document',
        'https://cyclonedx.org/bom',
        'https://cosign.sigstore.dev/attestation/vuln/v1',
        'https://openvex.dev/ns',
        'https://cosign.sigstore.dev/attestation/v1',
        'https://in-toto.io/Link/v1',
        'https://example.com/custom/v1',
      ],
    });
  });

  it("a requirement without signer properties is signed by whoever the rule accepts; one with them by its own signer", () => {
    const [rule] = parsePolicy(PROVENANCE).withVerification.get('registry.example.com')!;
    const inherited = parsePolicy(SBOM).withVerification.get('registry.example.com')![0]!.attestations[0]!;
    expect(inherited.signer).toMatchObject({ kind: 'keyless', identity: { exact: ALICE.email } });
    expect(rule!.attestations[0]!.signer).toMatchObject({ kind: 'keyless', issuer: { exact: BUILDER.issuer } });
  });

  it('refuses a signer that accepts anyone, CEL that does not compile, undeclared names, non-RE2 patterns, duplicate names', () => {
    const text = policyWith(`        - name: a
          predicate-type: vuln
          certificate-identity-regexp: ".*"
        - name: a
          predicate-type: vuln
          condition: "predicate.x +"
        - predicate-type: vuln
          condition: "predicte.x == 1 && predicate.y.matches('(?<=a)b')"`);
    let issues: readonly string[] = [];
    try {
      parsePolicy(text);
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyConfigError);
      issues = (err as PolicyConfigError).issues;
    }
    const at = 'allow_with_verification.registry.example.com.acme/app.attestations';
    expect(issues).toEqual([
      expect.stringMatching(new RegExp(`^${at.replace(/[.*/]/g, '\\$&')}\\.0\\.certificate-identity-regexp: ".\\*" accepts any identity`)),
      `${at}.1.name: "a" names another requirement of this rule too`,
      `${at}.1.condition: CEL: 1:13: found + but expecting end of input`,
      expect.stringMatching(/\.attestations\.2\.condition: CEL: 1:1: undeclared name "predicte"/),
      expect.stringMatching(/\.attestations\.2\.condition: CEL: 1:40: not an RE2 pattern/),
    ]);
  });

  it('policy check points at the file line and column of a CEL problem', () => {
    const text = policyWith(`        - predicate-type: vuln
          condition: predicate.ok && predicte.x == 1
        - predicate-type: vuln
          condition: |
            predicate.ok &&
              undeclared.x`);
    const r = checkPolicyText(text, 'p.yaml');
    expect('problems' in r && r.problems.map(({ line, column, message }) => ({ line, column, message: message.slice(0, 40) }))).toEqual([
      { line: 8, column: 38, message: 'CEL: 1:17: undeclared name "predicte" (d' },
      { line: 12, column: 15, message: 'CEL: 2:3: undeclared name "undeclared" (' },
    ]);
  });
});

describe('attestation requirements: decisions', () => {
  const provenance = parsePolicy(PROVENANCE);
  const sbom = parsePolicy(SBOM);
  const scanPolicy = parsePolicy(SCAN);

  it('SLSA provenance built by actions/runner from acme/app on a tag admits; on a branch, by another builder or signer it does not', () => {
    const ok = decide(provenance, 'registry.example.com', 'acme/app', facts([attestation('https://slsa.dev/provenance/v1', slsa('refs/tags/v1.0.0'), BUILDER)]), NOW);
    expect(ok).toMatchObject({ allowed: true, reason: 'verified', expiresAt: null, attestations: [{ requirement: 'provenance', satisfied: true, reason: 'satisfied' }] });
    const branch = decide(provenance, 'registry.example.com', 'acme/app', facts([attestation('https://slsa.dev/provenance/v1', slsa('refs/heads/main'), BUILDER)]), NOW);
    expect(branch).toMatchObject({ allowed: false, reason: 'attestation_failed', attestations: [{ reason: 'condition_failed' }] });
    expect(branch.message).toContain("ref.startsWith('refs/tags/') is false");
    const builder = decide(provenance, 'registry.example.com', 'acme/app', facts([attestation('https://slsa.dev/provenance/v1', slsa('refs/tags/v1', 'https://evil.example/builder'), BUILDER)]), NOW);
    expect(builder).toMatchObject({ allowed: false, reason: 'attestation_failed' });
    const byAlice = decide(provenance, 'registry.example.com', 'acme/app', facts([attestation('https://slsa.dev/provenance/v1', slsa('refs/tags/v1'))]), NOW);
    expect(byAlice).toMatchObject({ allowed: false, reason: 'attestation_missing', attestations: [{ reason: 'signer_mismatch' }] });
    const none = decide(provenance, 'registry.example.com', 'acme/app', facts([]), NOW);
    expect(none).toMatchObject({ allowed: false, reason: 'attestation_missing', message: expect.stringContaining('provenance'), attestations: [{ reason: 'missing' }] });
  });

  it('an SPDX or a CycloneDX SBOM will do; an unverified one will not', () => {
    for (const type of ['https://spdx.dev/Document', 'https://cyclonedx.org/bom']) {
      expect(decide(sbom, 'registry.example.com', 'acme/app', facts([attestation(type, {})]), NOW)).toMatchObject({ allowed: true });
    }
    const forged = attestation('https://spdx.dev/Document', {}, undefined, { outcome: 'invalid_signature', reason: 'bad signature', identity: null, statement: null });
    expect(decide(sbom, 'registry.example.com', 'acme/app', facts([forged]), NOW)).toMatchObject({ allowed: false, reason: 'attestation_missing', attestations: [{ reason: 'unverified' }] });
  });

  it('a scan newer than 7 days with no critical finding admits until it is 7 days old: the decision expires then', () => {
    const finished = '2026-11-25T10:00:00Z';
    const d = decide(scanPolicy, 'registry.example.com', 'acme/app', facts([attestation('https://cosign.sigstore.dev/attestation/vuln/v1', scan(finished, ['HIGH']))]), NOW);
    expect(d).toMatchObject({ allowed: true, expiresAt: '2026-12-02T10:00:00.000Z' });
    const later = decide(scanPolicy, 'registry.example.com', 'acme/app', facts([attestation('https://cosign.sigstore.dev/attestation/vuln/v1', scan(finished, ['HIGH']))]), new Date('2026-12-02T10:00:00Z'));
    expect(later).toMatchObject({ allowed: false, reason: 'attestation_failed' });
    const critical = decide(scanPolicy, 'registry.example.com', 'acme/app', facts([attestation('https://cosign.sigstore.dev/attestation/vuln/v1', scan(finished, ['HIGH', 'CRITICAL']))]), NOW);
    expect(critical).toMatchObject({ allowed: false, reason: 'attestation_failed' });
  });

  it('a denied signature stays denied for its own reason; the requirement results are still given', () => {
    const f: ManifestFacts = { ...facts([attestation('https://spdx.dev/Document', {})]), signatures: [] , status: 'unsigned' };
    expect(decide(sbom, 'registry.example.com', 'acme/app', f, NOW)).toMatchObject({ allowed: false, reason: 'unsigned', attestations: [{ satisfied: true }] });
    expect(attestationChecks(sbom, 'registry.example.com', 'acme/app', f, NOW)).toEqual([expect.objectContaining({ requirement: 'sbom', satisfied: true })]);
  });
});

describe('attestation requirements with modes and namespace scopes', () => {
  // The top level needs only ALICE's signature; in the payments scope (its own rule, in warn mode)
  // a scan newer than 7 days too; in sandboxes, the top-level rule in audit mode.
  const SCOPED = parsePolicy(
    [
      'allow_with_verification:',
      '  registry.example.com:',
      '    acme/*:',
      `      certificate-identity: ${ALICE.email}`,
      `      certificate-oidc-issuer: ${ALICE.issuer}`,
      'scopes:',
      '  payments:',
      '    namespaces: [payments]',
      '    allow_with_verification:',
      '      registry.example.com:',
      '        acme/*:',
      `          certificate-identity: ${ALICE.email}`,
      `          certificate-oidc-issuer: ${ALICE.issuer}`,
      '          mode: warn',
      '          attestations:',
      '            - name: scan',
      '              predicate-type: vuln',
      "              condition: now - timestamp(predicate.metadata.scanFinishedOn) < duration('168h')",
      '  sandboxes:',
      '    namespaces: ["dev-*"]',
      '    mode: audit',
      '',
    ].join('\n'),
  );
  const VULN = 'https://cosign.sigstore.dev/attestation/vuln/v1';

  it("a scope's rule checks its own attestation requirements; the decision expires when any variant's answer does", () => {
    expect(requiredPredicateTypes(SCOPED)).toEqual([VULN]);
    const fresh = decide(SCOPED, 'registry.example.com', 'acme/app', facts([attestation(VULN, scan('2026-11-25T10:00:00Z', []))]), NOW);
    expect(fresh).toMatchObject({ allowed: true, mode: 'enforce', expiresAt: '2026-12-02T10:00:00.000Z' });
    expect(fresh.attestations).toBeUndefined();
    expect(fresh.scoped?.payments).toMatchObject({ allowed: true, mode: 'warn', attestations: [{ requirement: 'scan', satisfied: true, expiresAt: '2026-12-02T10:00:00.000Z' }] });
    expect(fresh.scoped?.sandboxes).toMatchObject({ allowed: true, mode: 'audit' });

    const none = decide(SCOPED, 'registry.example.com', 'acme/app', facts([]), NOW);
    expect(none).toMatchObject({ allowed: true, expiresAt: null });
    expect(none.scoped?.payments).toMatchObject({ allowed: false, reason: 'attestation_missing', mode: 'warn', rule: 'scopes.payments.allow_with_verification.registry.example.com.acme/*' });
    expect(attestationChecks(SCOPED, 'registry.example.com', 'acme/app', facts([]), NOW)).toEqual([]);
    expect(attestationChecks(SCOPED, 'registry.example.com', 'acme/app', facts([]), NOW, SCOPED.scopes.find((s) => s.name === 'payments'))).toEqual([expect.objectContaining({ requirement: 'scan', reason: 'missing' })]);
  });

  it('explain lists each attestation requirement with its result, in the namespace asked about', () => {
    const old = facts([attestation(VULN, scan('2026-11-01T00:00:00Z', []))]);
    const e = explain(SCOPED, 'registry.example.com', 'acme/app', old, 'payments', NOW.getTime());
    expect(e).toMatchObject({ scope: 'payments', mode: 'warn', decision: { allowed: false, reason: 'attestation_failed' } });
    expect(e.requirements).toEqual([
      expect.objectContaining({ kind: 'signature', satisfied: true }),
      {
        kind: 'attestation',
        description: `attestation scan: ${VULN}, signed by identity ${ALICE.email}, issuer ${ALICE.issuer}, where now - timestamp(predicate.metadata.scanFinishedOn) < duration('168h')`,
        satisfied: false,
        detail: expect.stringContaining('is false'),
      },
    ]);
    expect(e.attestations).toEqual([expect.objectContaining({ requirement: 'scan', satisfied: false, reason: 'condition_failed' })]);

    const fresh = explain(SCOPED, 'registry.example.com', 'acme/app', facts([attestation(VULN, scan('2026-11-25T10:00:00Z', []))]), 'payments', NOW.getTime());
    expect(fresh.requirements[1]).toMatchObject({ satisfied: true, detail: expect.stringContaining('until 2026-12-02T10:00:00.000Z') });
    // Outside the scope the top-level rule applies: no attestation requirement.
    const outside = explain(SCOPED, 'registry.example.com', 'acme/app', old, 'web', NOW.getTime());
    expect(outside).toMatchObject({ scope: null, decision: { allowed: true }, attestations: [] });
    expect(outside.requirements.map((r) => r.kind)).toEqual(['signature']);
    // Not indexed: every requirement unmet, and said why.
    expect(explain(SCOPED, 'registry.example.com', 'acme/app', null, 'payments', NOW.getTime()).requirements[1]).toMatchObject({ satisfied: false, detail: 'the image is not indexed: no attestation known' });
  });
});

describe('nextChange', () => {
  const compile = (source: string) => compileCondition(source) as CompiledCondition;
  const vars = { statement: {}, predicate: {}, predicateType: 'x', subject: [], signer: { subject: 'a', issuer: null }, signedAt: new Date('2026-11-28T00:00:00Z') };

  it('finds when an answer flips, to the millisecond, both ways', () => {
    const age = compile("now - signedAt < duration('48h')");
    expect(age.usesNow).toBe(true);
    expect(nextChange(age, vars, NOW).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    const notYet = compile("now > timestamp('2026-12-01T00:00:00Z')");
    expect(nextChange(notYet, vars, NOW).toISOString()).toBe('2026-12-01T00:00:00.001Z');
  });

  it('a condition that never flips is looked at again at the horizon', () => {
    const c = compile("now > timestamp('2000-01-01T00:00:00Z')");
    expect(nextChange(c, vars, NOW).getTime() - NOW.getTime()).toBe(2 ** 25 * 1000);
    expect(compile('predicate == {}').usesNow).toBe(false);
  });
});

describe('schema/policy.schema.json: attestations', () => {
  const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../../schema/policy.schema.json', import.meta.url)), 'utf8')) as object;
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  const validate = ajv.compile(schema);

  it.each([PROVENANCE, SBOM, SCAN])('accepts the examples parsePolicy accepts (%#)', (text) => {
    expect(validate(parseYaml(text))).toBe(true);
  });

  it.each([
    ['no predicate type', { condition: 'true' }],
    ['an identity without an issuer', { 'predicate-type': 'vuln', 'certificate-identity': 'a@b.c' }],
    ['a key plus an identity', { 'predicate-type': 'vuln', key: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----', 'certificate-identity': 'a', 'certificate-oidc-issuer': 'https://x.example' }],
    ['an unknown property', { 'predicate-type': 'vuln', conditions: ['true'] }],
  ])('rejects a requirement with %s, as parsePolicy does', (_name, requirement) => {
    const policy = { allow_with_verification: { 'docker.io': { 'team/app': { 'certificate-identity': 'a@b.c', 'certificate-oidc-issuer': 'https://x.example', attestations: [requirement] } } } };
    expect(validate(policy)).toBe(false);
    expect(() => parsePolicy(JSON.stringify(policy))).toThrow(PolicyConfigError);
  });
});
