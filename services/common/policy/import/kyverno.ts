import { celPath } from './policy-controller.ts';
import { asArray, imageTargets, type ImportOptions, type ImportScope, isObject, leftover, matcherProps, pemKeys, type PolicyBuilder, type RuleProps, str, wildcardRegexp } from './shared.ts';

// Kyverno's `verifyImages` rules (ClusterPolicy/Policy, kyverno.io) as Signet rules: image
// references, one attestor set (keys, or one keyless entry), annotations, and attestations with
// their conditions translated to CEL.

const FULCIO_EXTENSIONS: Readonly<Record<string, string>> = {
  githubWorkflowTrigger: 'certificate-github-workflow-trigger',
  githubWorkflowSha: 'certificate-github-workflow-sha',
  githubWorkflowName: 'certificate-github-workflow-name',
  githubWorkflowRepository: 'certificate-github-workflow-repository',
  githubWorkflowRef: 'certificate-github-workflow-ref',
};

function keylessEntry(k: Record<string, unknown>, where: string, b: PolicyBuilder): RuleProps | null {
  leftover(k, ['subject', 'subjectRegExp', 'issuer', 'issuerRegExp', 'additionalExtensions', 'rekor', 'ctlog', 'roots'], where, b);
  if (k.roots !== undefined) {
    b.cannot(`${where}.roots`, 'trust material is SIGNET_TRUSTED_ROOT in Signet, not part of the policy');
  }
  if (isObject(k.rekor) && k.rekor.ignoreTlog === true) {
    b.cannot(`${where}.rekor.ignoreTlog`, 'keyless signatures always need the transparency log in Signet');
  }
  if (isObject(k.ctlog) && k.ctlog.ignoreSCT === true) {
    b.cannot(`${where}.ctlog.ignoreSCT`, 'Signet always requires a valid SCT');
  }
  const wild = (v: string | undefined): [string | undefined, string | undefined] => (v !== undefined && /[*?]/.test(v) ? [undefined, wildcardRegexp(v)] : [v, undefined]);
  const [subject, subjectWild] = wild(str(k.subject));
  const [issuer, issuerWild] = wild(str(k.issuer));
  const props: RuleProps = {
    ...matcherProps('identity', subject, str(k.subjectRegExp) ?? subjectWild),
    ...matcherProps('oidc-issuer', issuer, str(k.issuerRegExp) ?? issuerWild),
  };
  for (const [ext, value] of Object.entries(isObject(k.additionalExtensions) ? k.additionalExtensions : {})) {
    if (FULCIO_EXTENSIONS[ext] !== undefined && typeof value === 'string') {
      props[FULCIO_EXTENSIONS[ext]] = value;
    } else {
      b.cannot(`${where}.additionalExtensions.${ext}`, 'Signet matches the GitHub workflow claims only');
    }
  }
  return props;
}

function keysEntry(k: Record<string, unknown>, where: string, b: PolicyBuilder): { keys: string[]; props: RuleProps } | null {
  leftover(k, ['publicKeys', 'rekor', 'ctlog', 'signatureAlgorithm'], where, b);
  const keys = pemKeys(str(k.publicKeys) ?? '');
  if (keys.length === 0) {
    b.cannot(`${where}.publicKeys`, 'not a PEM key in the policy (a Secret, KMS or a variable): not written');
    return null;
  }
  const props: RuleProps = {};
  if (isObject(k.rekor) && k.rekor.ignoreTlog === true) {
    props['insecure-ignore-tlog'] = true;
  }
  if (isObject(k.ctlog)) {
    if (k.ctlog.ignoreSCT === true) {
      props['insecure-ignore-sct'] = true;
    }
    if (k.ctlog.tsaCertChain !== undefined || k.ctlog.pubkey !== undefined) {
      b.cannot(`${where}.ctlog`, 'trust material (a TSA chain, a CT key) is SIGNET_TRUSTED_ROOT in Signet, not part of the policy');
    }
  }
  return { keys, props };
}

/** One attestor set: every key entry (k of n by `count`), or its one keyless entry. */
function attestorProps(attestors: unknown, where: string, b: PolicyBuilder): RuleProps | null {
  const sets = asArray(attestors).filter(isObject);
  sets.slice(1).forEach((_, i) => b.cannot(`${where}.${i + 1}`, 'another attestor set (all must pass there); a Signet rule has one signer: only the first is written'));
  const set = sets[0];
  if (set === undefined) {
    return null;
  }
  const entries = asArray(set.entries).filter(isObject);
  entries.forEach((e, i) => leftover(e, ['keys', 'keyless', 'certificates', 'annotations'], `${where}.0.entries.${i}`, b));
  const keyed = entries.map((e, i) => (isObject(e.keys) ? keysEntry(e.keys, `${where}.0.entries.${i}.keys`, b) : null)).filter((k) => k !== null);
  const annotations = entries.map((e) => e.annotations).find(isObject);
  const extra: RuleProps = annotations === undefined ? {} : { annotations };
  if (keyed.length > 0 && keyed.length === entries.length) {
    const count = typeof set.count === 'number' ? set.count : entries.length;
    const keys = keyed.flatMap((k) => k.keys);
    const props = keyed.reduce<RuleProps>((acc, k) => ({ ...acc, ...k.props }), {});
    return { key: keys.length === 1 ? keys[0] : keys, ...props, ...(count > 1 ? { threshold: count } : {}), ...extra };
  }
  const keyless = entries.findIndex((e) => isObject(e.keyless));
  entries.forEach((e, i) => {
    if (i !== keyless) {
      b.cannot(`${where}.0.entries.${i}`, isObject(e.certificates) ? 'certificate (non-Fulcio) signers: not expressible' : 'another entry beside a keyless one: not written');
    }
  });
  return keyless === -1 ? null : { ...keylessEntry(entries[keyless]!.keyless as Record<string, unknown>, `${where}.0.entries.${keyless}.keyless`, b), ...extra };
}

/** A Kyverno condition (`{key: '{{ path }}', operator, value}`) over the predicate, as CEL; null when it is not a plain path. */
export function conditionCel(c: Record<string, unknown>): string | null {
  const m = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}$/.exec(str(c.key) ?? '');
  if (m === null) {
    return null;
  }
  const k = celPath('predicate', m[1]!.split('.'));
  const v = JSON.stringify(c.value);
  const wildcard = typeof c.value === 'string' && /[*?]/.test(c.value);
  const anyIn = `(type(${k}) == list ? ${k}.exists(x, x in ${v}) : ${k} in ${v})`;
  const allIn = `(type(${k}) == list ? ${k}.all(x, x in ${v}) : ${k} in ${v})`;
  switch (c.operator) {
    case 'Equals':
      return wildcard ? `${k}.matches(${JSON.stringify(wildcardRegexp(c.value as string))})` : `${k} == ${v}`;
    case 'NotEquals':
      return wildcard ? `!${k}.matches(${JSON.stringify(wildcardRegexp(c.value as string))})` : `${k} != ${v}`;
    case 'In':
    case 'AnyIn':
      return Array.isArray(c.value) ? anyIn : null;
    case 'AllIn':
      return Array.isArray(c.value) ? allIn : null;
    case 'NotIn':
    case 'AllNotIn':
      return Array.isArray(c.value) ? `!${anyIn}` : null;
    case 'AnyNotIn':
      return Array.isArray(c.value) ? `!${allIn}` : null;
    case 'GreaterThan':
    case 'GreaterThanOrEquals':
    case 'LessThan':
    case 'LessThanOrEquals': {
      const op = { GreaterThan: '>', GreaterThanOrEquals: '>=', LessThan: '<', LessThanOrEquals: '<=' }[c.operator];
      return typeof c.value === 'number' ? `double(${k}) ${op} ${v}` : null;
    }
    default:
      return null;
  }
}

function conditions(blocks: unknown, where: string, b: PolicyBuilder): string[] {
  return asArray(blocks)
    .filter(isObject)
    .flatMap((block, i) => {
      const parts: string[] = [];
      for (const [join, list] of [
        [' && ', block.all],
        [' || ', block.any],
      ] as const) {
        const cels = asArray(list).filter(isObject).map((c) => conditionCel(c));
        if (cels.some((c) => c === null)) {
          b.cannot(`${where}.${i}`, 'a condition on something other than a plain predicate path, or an operator Signet does not translate: the block is left out (write it in CEL)');
          return [];
        }
        if (cels.length > 0) {
          parts.push(cels.length === 1 ? cels[0]! : `(${cels.join(join)})`);
        }
      }
      return parts.length === 0 ? [] : [parts.join(' && ')];
    });
}

function attestationRequirements(entry: Record<string, unknown>, where: string, b: PolicyBuilder): RuleProps[] {
  return asArray(entry.attestations)
    .filter(isObject)
    .map((a, i) => {
      const at = `${where}.attestations.${i}`;
      leftover(a, ['type', 'predicateType', 'name', 'attestors', 'conditions'], at, b);
      const signer = a.attestors === undefined ? {} : (attestorProps(a.attestors, `${at}.attestors`, b) ?? {});
      const cel = conditions(a.conditions, `${at}.conditions`, b);
      return {
        ...(str(a.name) === undefined ? {} : { name: str(a.name) }),
        'predicate-type': str(a.type) ?? str(a.predicateType) ?? 'custom',
        ...signer,
        ...(cel.length === 0 ? {} : { condition: cel.length === 1 ? cel[0] : cel }),
      };
    });
}

const IGNORED = ['mutateDigest', 'verifyDigest', 'useCache', 'type', 'failureAction', 'imageReferences', 'skipImageReferences', 'attestors', 'attestations', 'annotations'];

/** Where a policy's rules apply and what their denials do, from the policy document. */
interface PolicyContext {
  readonly scope: ImportScope;
  /** The policy's `validationFailureAction`, which a rule's own `failureAction` overrides. */
  readonly failureAction: unknown;
  /** `spec.emitWarning`: an Audit policy that also answers with warnings. */
  readonly emitWarning: boolean;
}

/** Kyverno's failure action as a Signet rule's `mode`: Audit → audit (warn with emitWarning); Enforce is Signet's default. */
function modeProps(action: unknown, ctx: PolicyContext, where: string, b: PolicyBuilder): RuleProps {
  const a = typeof action === 'string' ? action.toLowerCase() : undefined;
  if (a === 'audit') {
    return { mode: ctx.emitWarning ? 'warn' : 'audit' };
  }
  if (a !== undefined && a !== 'enforce') {
    b.cannot(where, `${String(action)}: not a Kyverno failure action; written as an enforcing rule`);
  }
  return {};
}

function importVerifyImages(entry: Record<string, unknown>, where: string, opts: ImportOptions, b: PolicyBuilder, ctx: PolicyContext): void {
  leftover(entry, [...IGNORED, 'required'], where, b);
  if (entry.type === 'Notary') {
    b.cannot(where, 'Notary signatures: Signet verifies Sigstore/cosign only; not written');
    return;
  }
  const mode = entry.failureAction === undefined ? modeProps(ctx.failureAction, ctx, `${where}: spec.validationFailureAction`, b) : modeProps(entry.failureAction, ctx, `${where}.failureAction`, b);
  if (entry.required === false) {
    b.cannot(`${where}.required`, 'false (only checks images that are signed): Signet requires the signature');
  }
  const note = (why: string) => b.cannot(`${where}.imageReferences`, why);
  const targets = asArray(entry.imageReferences).flatMap((r) => (typeof r === 'string' ? imageTargets(r, true, opts, note) : []));
  const skipped = asArray(entry.skipImageReferences).flatMap((r) => (typeof r === 'string' ? imageTargets(r, true, opts, note) : []));
  if (skipped.length > 0) {
    b.allow(skipped, ctx.scope);
    b.cannot(`${where}.skipImageReferences`, 'skipped images are written as allowed without verification (the most specific pattern wins in Signet)');
  }
  const attestations = attestationRequirements(entry, where, b);
  let signer = attestorProps(entry.attestors, `${where}.attestors`, b);
  if (signer === null && attestations.length > 0) {
    // Kyverno can check attestations alone; a Signet rule always needs a signature too.
    const first = attestations.find((a) => a.key !== undefined || a['certificate-identity'] !== undefined || a['certificate-identity-regexp'] !== undefined);
    if (first !== undefined) {
      signer = Object.fromEntries(Object.entries(first).filter(([k]) => !['name', 'predicate-type', 'condition'].includes(k)));
      b.cannot(`${where}.attestors`, 'none: Kyverno checks the attestations alone; a Signet rule also requires an image signature, here by the attestations\' signer');
    }
  }
  if (signer === null) {
    b.cannot(where, 'no signer Signet can express: not written');
    return;
  }
  b.verify(targets, { ...signer, ...mode, ...(attestations.length > 0 ? { attestations } : {}) }, where, ctx.scope);
}

/** Converts one Kyverno ClusterPolicy or Policy document (its `verifyImages` rules). */
export function importKyvernoPolicy(doc: Record<string, unknown>, opts: ImportOptions, b: PolicyBuilder): void {
  const meta = isObject(doc.metadata) ? doc.metadata : {};
  const where = `${String(doc.kind)} ${str(meta.name) ?? '(unnamed)'}`;
  const spec = isObject(doc.spec) ? doc.spec : {};
  // A namespaced Policy applies in its namespace only: a Signet scope of that one namespace.
  const namespace = str(meta.namespace) ?? 'default';
  const scope = doc.kind === 'Policy' ? { name: namespace, namespaces: [namespace] } : null;
  const ctx: PolicyContext = { scope, failureAction: spec.validationFailureAction, emitWarning: spec.emitWarning === true };
  if (spec.validationFailureActionOverrides !== undefined) {
    b.cannot(`${where}: spec.validationFailureActionOverrides`, 'per-namespace failure actions: the rules are written with the policy\'s own');
  }
  const rules = asArray(spec.rules).filter(isObject);
  rules.forEach((rule, r) => {
    const at = `${where}: spec.rules.${r}`;
    if (rule.imageExtractors !== undefined) {
      b.cannot(`${at}.imageExtractors`, 'images found by custom extractors: Signet decides the images it is asked about');
    }
    const match = JSON.stringify(rule.match ?? {});
    if (/namespaces|namespaceSelector|selector|subjects|roles/.test(match) || rule.exclude !== undefined) {
      b.cannot(`${at}.match`, 'namespace, selector or subject conditions: written for every workload');
    }
    asArray(rule.verifyImages)
      .filter(isObject)
      .forEach((entry, i) => importVerifyImages(entry, `${at}.verifyImages.${i}`, opts, b, ctx));
  });
  if (!rules.some((r) => Array.isArray(r.verifyImages))) {
    b.cannot(where, 'no verifyImages rule: nothing to import');
  }
}
