import { parseAllDocuments, stringify } from 'yaml';
import { parsePolicy, PolicyConfigError } from '../policy.ts';
import { importKyvernoPolicy } from './kyverno.ts';
import { importClusterImagePolicy } from './policy-controller.ts';
import { type ImportOptions, type ImportResult, isObject, PolicyBuilder, str } from './shared.ts';

export type { ImportOptions, ImportResult } from './shared.ts';

/** Input that is not a policy this import reads (bad YAML, another kind). */
export class PolicyImportError extends Error {
  override readonly name = 'PolicyImportError';
}

/**
 * Reads sigstore policy-controller ClusterImagePolicies and Kyverno ClusterPolicies/Policies
 * (`verifyImages` rules) — any number of YAML documents — and returns the equivalent Signet policy
 * and every part of them it cannot express. The result is checked by Signet's own policy parser.
 */
export function importPolicies(text: string, opts: ImportOptions): ImportResult & { readonly yaml: string } {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const b = new PolicyBuilder();
  let read = 0;
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (doc.errors.length > 0) {
      throw new PolicyImportError(`document ${i + 1} is not YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) {
      continue;
    }
    if (!isObject(value)) {
      throw new PolicyImportError(`document ${i + 1} is not a Kubernetes object`);
    }
    const api = str(value.apiVersion) ?? '';
    if (value.kind === 'ClusterImagePolicy' && api.startsWith('policy.sigstore.dev/')) {
      importClusterImagePolicy(value, opts, b);
    } else if ((value.kind === 'ClusterPolicy' || value.kind === 'Policy') && api.startsWith('kyverno.io/')) {
      importKyvernoPolicy(value, opts, b);
    } else {
      throw new PolicyImportError(`document ${i + 1} is ${String(value.kind)} (${api}), not a policy-controller ClusterImagePolicy or a Kyverno ClusterPolicy/Policy`);
    }
    read++;
  }
  if (read === 0) {
    throw new PolicyImportError('no policy in the input');
  }
  b.finish();
  const { policy, unexpressed } = b.result;
  if (policy.allow_with_verification === undefined && policy.allow_without_verification === undefined && policy.scopes === undefined) {
    return { policy, unexpressed, yaml: '' };
  }
  const yaml = stringify(policy, { lineWidth: 0 });
  try {
    parsePolicy(yaml, 'imported policy');
  } catch (err) {
    // A rule Signet refuses (a regexp accepting anyone, a bad key) is reported, never written silently.
    if (err instanceof PolicyConfigError) {
      throw new PolicyImportError(`the imported policy is not valid for Signet:\n${err.issues.map((i) => `  ${i}`).join('\n')}`);
    }
    throw err;
  }
  return { policy, unexpressed, yaml };
}

/** The policy as a file: what could not be expressed first, as comments. */
export function formatImported(result: ImportResult & { readonly yaml: string }, source: string): string {
  const header = [`# Imported by \`signet policy import\` from ${source}.`];
  if (result.unexpressed.length > 0) {
    header.push('# Not expressed (review before use):', ...result.unexpressed.map((u) => `#   - ${u.replace(/\n/g, ' ')}`));
  }
  return `${header.join('\n')}\n${result.yaml}`;
}
