import { asArray, type ImageTarget, imageTargets, type ImportOptions, isObject, leftover, matcherProps, type PolicyBuilder, type RuleProps, str } from './shared.ts';

// sigstore policy-controller's ClusterImagePolicy (policy.sigstore.dev v1alpha1/v1beta1) as Signet
// rules: its image globs, one authority (keyless identities or a key, or `static: pass`), and the
// authority's attestations. An image must satisfy one of a policy's authorities; a Signet rule has
// one signer, so extra authorities are listed, not written.

const PUBLIC_GOOD = ['https://fulcio.sigstore.dev', 'https://rekor.sigstore.dev'];

/** A CUE policy made only of nested fields and literal values, as CEL equalities over `root`; null for anything else. */
export function simpleCue(data: string, root: string): string | null {
  const path: string[] = [];
  const checks: string[] = [];
  for (const raw of data.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('//')) {
      continue;
    }
    if (line === '}') {
      if (path.pop() === undefined) {
        return null;
      }
      continue;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*|"[^"]+"):\s*(\{|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false)$/.exec(line);
    if (m === null) {
      return null;
    }
    const key = m[1]!.startsWith('"') ? (JSON.parse(m[1]!) as string) : m[1]!;
    if (m[2] === '{') {
      path.push(key);
    } else {
      checks.push(`${celPath(root, [...path, key])} == ${m[2]}`);
    }
  }
  return path.length === 0 && checks.length > 0 ? checks.join(' && ') : null;
}

/** `root.a.b`, or `root['a-b']` for keys that are not identifiers. */
export function celPath(root: string, keys: readonly string[]): string {
  return keys.reduce((acc, k) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${acc}.${k}` : `${acc}[${JSON.stringify(k)}]`), root);
}

function keylessProps(keyless: Record<string, unknown>, where: string, b: PolicyBuilder): RuleProps | null {
  const url = str(keyless.url);
  if (url !== undefined && !PUBLIC_GOOD.includes(url.replace(/\/$/, ''))) {
    b.cannot(`${where}.url`, `Fulcio at ${url}: add its trusted root to SIGNET_TRUSTED_ROOT`);
  }
  for (const k of ['ca-cert', 'trustRootRef', 'insecureIgnoreSCT']) {
    if (keyless[k] !== undefined) {
      b.cannot(`${where}.${k}`, k === 'insecureIgnoreSCT' ? 'Signet always requires a valid SCT' : 'trust material is SIGNET_TRUSTED_ROOT in Signet, not part of the policy');
    }
  }
  const identities = asArray(keyless.identities).filter(isObject);
  if (identities.length === 0) {
    b.cannot(where, 'no identities: it accepts anyone with a certificate from the CA, which no Signet rule may; not written');
    return null;
  }
  const [first] = identities;
  const subjects = identities.map((i) => str(i.subject));
  if (identities.length > 1) {
    const issuer = str(first!.issuer);
    if (issuer !== undefined && identities.every((i) => str(i.issuer) === issuer && str(i.subject) !== undefined && i.subjectRegExp === undefined)) {
      const any = subjects.map((s) => s!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
      return { 'certificate-identity-regexp': `^(?:${any})$`, 'certificate-oidc-issuer': issuer };
    }
    b.cannot(`${where}.identities`, `${identities.length} identities with different issuers or regexps: only the first is written`);
  }
  return { ...matcherProps('identity', str(first!.subject), str(first!.subjectRegExp)), ...matcherProps('oidc-issuer', str(first!.issuer), str(first!.issuerRegExp)) };
}

function signerProps(authority: Record<string, unknown>, where: string, b: PolicyBuilder): RuleProps | null {
  if (isObject(authority.keyless)) {
    return keylessProps(authority.keyless, `${where}.keyless`, b);
  }
  if (isObject(authority.key)) {
    const key = authority.key;
    if (str(key.data) === undefined) {
      b.cannot(`${where}.key`, `${key.kms !== undefined ? 'a KMS key' : 'a key in a Secret'}: Signet reads keys from the policy or SIGNET_TRUSTED_KEYS; put its PEM in the policy; not written`);
      return null;
    }
    if (key.hashAlgorithm !== undefined && key.hashAlgorithm !== 'sha256') {
      b.cannot(`${where}.key.hashAlgorithm`, `${JSON.stringify(key.hashAlgorithm)}: Signet verifies key signatures over sha256`);
    }
    return { key: str(key.data)!.trim() };
  }
  b.cannot(where, 'neither keyless nor key: not written');
  return null;
}

function attestationRequirements(authority: Record<string, unknown>, where: string, b: PolicyBuilder): RuleProps[] {
  return asArray(authority.attestations)
    .filter(isObject)
    .map((a, i) => {
      const at = `${where}.attestations.${i}`;
      const requirement: RuleProps = { ...(str(a.name) === undefined ? {} : { name: str(a.name) }), 'predicate-type': str(a.predicateType) ?? 'custom' };
      if (isObject(a.policy)) {
        const cel = a.policy.type === 'cue' && str(a.policy.data) !== undefined ? simpleCue(str(a.policy.data)!, 'statement') : null;
        if (cel === null) {
          b.cannot(`${at}.policy`, `a ${String(a.policy.type)} policy Signet cannot translate to CEL: the requirement is written without it (write its condition in CEL)`);
        } else {
          requirement.condition = cel;
        }
      }
      return requirement;
    });
}

/** Converts one ClusterImagePolicy document. */
export function importClusterImagePolicy(doc: Record<string, unknown>, opts: ImportOptions, b: PolicyBuilder): void {
  const name = isObject(doc.metadata) ? (str(doc.metadata.name) ?? '(unnamed)') : '(unnamed)';
  const where = `ClusterImagePolicy ${name}`;
  const spec = isObject(doc.spec) ? doc.spec : {};
  leftover(spec, ['images', 'authorities', 'mode', 'policy', 'match'], `${where}: spec`, b);
  // policy-controller's `warn` admits with a warning, as Signet's does; `enforce` is Signet's default.
  const mode = spec.mode === 'warn' ? { mode: 'warn' } : {};
  if (spec.mode !== undefined && spec.mode !== 'warn' && spec.mode !== 'enforce') {
    b.cannot(`${where}: spec.mode`, `${typeof spec.mode === 'string' ? spec.mode : JSON.stringify(spec.mode)}: not a policy-controller mode; written as an enforcing rule`);
  }
  if (spec.policy !== undefined) {
    b.cannot(`${where}: spec.policy`, 'a CUE/Rego policy over the admitted object: Signet decides images, not objects; not written');
  }
  if (spec.match !== undefined) {
    b.cannot(`${where}: spec.match`, 'resource matching: Signet decides every image of every workload it is asked about');
  }
  const targets: ImageTarget[] = asArray(spec.images)
    .filter(isObject)
    .flatMap((img, i) => {
      if (str(img.glob) === undefined) {
        b.cannot(`${where}: spec.images.${i}`, 'only glob patterns are read');
        return [];
      }
      return imageTargets(str(img.glob)!, false, opts, (why) => b.cannot(`${where}: spec.images.${i}`, why));
    });
  const authorities = asArray(spec.authorities).filter(isObject);
  const [authority, ...others] = authorities;
  if (authority === undefined) {
    b.cannot(`${where}: spec.authorities`, 'none: not written');
    return;
  }
  others.forEach((_, i) => b.cannot(`${where}: spec.authorities.${i + 1}`, 'another authority (any one suffices there); a Signet rule has one signer: only the first is written'));
  const at = `${where}: spec.authorities.0`;
  leftover(authority, ['name', 'keyless', 'key', 'static', 'ctlog', 'attestations', 'source', 'rfc3161timestamp'], at, b);
  if (isObject(authority.static)) {
    if (authority.static.action === 'pass') {
      b.allow(targets);
    } else {
      b.cannot(`${at}.static`, `action ${String(authority.static.action)}: Signet denies what no rule allows; not written`);
    }
    return;
  }
  if (authority.source !== undefined) {
    b.cannot(`${at}.source`, 'signatures kept in another repository: not read from there');
  }
  if (isObject(authority.ctlog)) {
    const url = str(authority.ctlog.url);
    if ((url !== undefined && !PUBLIC_GOOD.includes(url.replace(/\/$/, ''))) || authority.ctlog.trustRootRef !== undefined) {
      b.cannot(`${at}.ctlog`, 'a private Rekor: add its trusted root to SIGNET_TRUSTED_ROOT');
    }
  }
  const signer = signerProps(authority, at, b);
  if (signer === null) {
    return;
  }
  const attestations = attestationRequirements(authority, at, b);
  b.verify(targets, { ...signer, ...mode, ...(attestations.length > 0 ? { attestations } : {}) }, where);
}
