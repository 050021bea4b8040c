// Every object in deploy/kubernetes validated offline: built-in kinds against the Kubernetes OpenAPI
// schemas, cert-manager, Kyverno and prometheus-operator resources against their CRD schemas (all
// from the kubernetes-models packages), and Gatekeeper's resources against the fields of its CRDs
// that Signet's manifests use (no package ships Gatekeeper's CRDs; see gatekeeper-schemas.ts). An
// object of a kind nothing here knows fails the test, so a new manifest cannot go unchecked.
// The schemas do not reject unknown fields (Kubernetes' own OpenAPI has no additionalProperties:
// false), so the hardening the README promises is asserted field by field below.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validatorFor } from './helpers/kubernetes-schemas.ts';

const DIR = fileURLToPath(new URL('../deploy/kubernetes/', import.meta.url));
const docs = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(`${DIR}${f}`, 'utf8')).map((d) => ({ file: f, doc: d.toJS() as Record<string, any> })));
const of = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
const ROLES = ['api', 'ingest', 'worker'];

describe('deploy/kubernetes against the schemas', () => {
  it.each(docs.map((d) => [`${d.file}: ${d.doc.kind}/${d.doc.metadata?.name}`, d.doc] as const))('%s', async (_name, doc) => {
    const validate = await validatorFor(doc.apiVersion, doc.kind);
    expect(validate, `no schema for ${doc.apiVersion} ${doc.kind}`).not.toBeNull();
    validate!(doc);
  });

  it('a schema violation is reported (the check can fail)', async () => {
    const deployment = structuredClone(of('Deployment')[0]!);
    deployment.spec.replicas = 'three';
    const validate = await validatorFor(deployment.apiVersion, deployment.kind);
    expect(() => validate!(deployment)).toThrow(/replicas/);
    const assign = structuredClone(of('Assign')[0]!);
    assign.spec.parameters.assign.externalData.failurePolicy = 'Sometimes';
    const validateAssign = await validatorFor(assign.apiVersion, assign.kind);
    expect(() => validateAssign!(assign)).toThrow(/failurePolicy/);
  });
});

describe('deploy/kubernetes hardening', () => {
  const pods = of('Deployment').map((d) => ({ name: d.metadata.name as string, spec: d.spec.template.spec }));

  it('runs every pod at the Pod Security "restricted" level, with no service-account token', () => {
    expect(of('Namespace')[0]!.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(of('ServiceAccount')[0]!.automountServiceAccountToken).toBe(false);
    for (const { name, spec } of pods) {
      expect(spec.serviceAccountName, name).toBe('signet');
      expect(spec.automountServiceAccountToken, name).toBe(false);
      expect(spec.securityContext, name).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      for (const c of spec.containers) {
        expect(c.securityContext, name).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        expect(c.volumeMounts.map((m: { mountPath: string }) => m.mountPath), `${name}: /tmp is writable for the TUF cache`).toContain('/tmp');
      }
    }
  });

  it('gives every role a PodDisruptionBudget and topology spread', () => {
    const pdbs = of('PodDisruptionBudget').map((p) => p.spec.selector.matchLabels['app.kubernetes.io/component']);
    expect(pdbs.sort()).toEqual(ROLES);
    for (const { name, spec } of pods) {
      expect(spec.topologySpreadConstraints.map((t: { topologyKey: string }) => t.topologyKey), name).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    }
    const api = of('Deployment').find((d) => d.metadata.name === 'signet-api')!;
    const apiPdb = of('PodDisruptionBudget').find((p) => p.metadata.name === 'signet-api')!;
    expect(apiPdb.spec.minAvailable).toBeLessThan(api.spec.replicas);
  });

  it('denies all traffic by default and opens only what each role needs', () => {
    const policies = of('NetworkPolicy');
    expect(policies.find((p) => p.metadata.name === 'default-deny')!.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const api = policies.find((p) => p.metadata.name === 'signet-api-ingress')!;
    const from = api.spec.ingress[0].from.map((f: any) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name']).filter(Boolean);
    expect(from).toEqual(['gatekeeper-system', 'kyverno']);
    const worker = policies.find((p) => p.metadata.name === 'signet-worker-egress')!;
    expect(worker.spec.podSelector.matchLabels['app.kubernetes.io/component']).toBe('worker');
  });

  it('has no migration Job to re-create on upgrade (replicas migrate under the lock)', () => {
    expect(of('Job')).toEqual([]);
  });

  it('uses the current Kyverno syntax', () => {
    for (const policy of of('ClusterPolicy')) {
      expect(policy.spec.validationFailureAction).toBeUndefined();
      expect(policy.spec.webhookTimeoutSeconds).toBeUndefined();
      for (const rule of policy.spec.rules) {
        expect(['Audit', 'Enforce']).toContain(rule.validate.failureAction);
      }
    }
  });
});
