// The shipped admission webhooks and policy are safe to apply to a live cluster: opt-in per
// namespace, never in kube-system, Signet's namespace or cert-manager, pinning on next to
// validation, and a policy that starts in audit.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parsePolicy } from '../services/common/policy/policy.ts';

const read = (file: string) => parseAllDocuments(readFileSync(fileURLToPath(new URL(`../deploy/kubernetes/${file}`, import.meta.url)), 'utf8')).map((d) => d.toJS() as Record<string, any>);

describe('deploy/kubernetes rollout defaults', () => {
  const webhooks = read('admission-webhooks.yaml').flatMap((d) => (d.webhooks as any[]).map((w) => ({ kind: d.kind as string, ...w })));

  it('sends only namespaces labelled signet.dev/include=true, excluding kube-system, signet and cert-manager', () => {
    expect(webhooks.map((w) => w.kind).sort()).toEqual(['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    for (const w of webhooks) {
      expect(w.namespaceSelector.matchLabels).toEqual({ 'signet.dev/include': 'true' });
      expect(w.namespaceSelector.matchExpressions).toContainEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: expect.arrayContaining(['kube-system', 'signet', 'cert-manager']) });
      expect(w.admissionReviewVersions).toEqual(['v1', 'v1beta1']);
    }
  });

  it('pins tags to digests (the mutating webhook) next to validation', () => {
    const mutate = webhooks.find((w) => w.kind === 'MutatingWebhookConfiguration')!;
    expect(mutate.clientConfig.service.path).toBe('/admission/mutate');
    expect(mutate.rules.flatMap((r: any) => r.resources)).toContain('pods');
  });

  it('ships a policy that starts in audit', () => {
    const cm = read('signet.yaml').find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'signet-policy')!;
    expect(parsePolicy(cm.data['policy.yaml'] as string).mode).toBe('audit');
  });
});
