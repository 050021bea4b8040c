import { RE2JS } from 're2js';

/**
 * A compiled Go RE2 pattern, tested the way Go's `regexp.MatchString` does: it matches when it
 * matches ANYWHERE in the value (unanchored), exactly as cosign (`CheckCertificatePolicy`),
 * sigstore-go (`SubjectAlternativeNameMatcher.Verify`), policy-controller and Kyverno test their
 * `-regexp` identities. Anchor with `^…$` to match the whole value.
 */
export interface Re2Pattern {
  test(value: string): boolean;
}

/**
 * An exact string, or an RE2 pattern that matches anywhere in the value (see {@link Re2Pattern}).
 * The type `-regexp` policy properties compile to, for signatures and attestations alike.
 */
export type Matcher = { readonly exact: string } | { readonly regexp: Re2Pattern; readonly source: string };

/**
 * Compiles `source` with RE2 syntax (re2js, a port of RE2/J, itself a port of Go's `regexp`), so
 * a pattern means what it means to cosign: `(?i)`, `\z`, `[[:alpha:]]`, `\Q…\E` and `(?P<n>…)`
 * work; look-arounds and back-references are refused as cosign refuses them ("malformed"). JS
 * RegExp differs on each of these. Throws an Error whose message says what is wrong.
 */
export function compileRe2(source: string): Re2Pattern {
  const re = RE2JS.compile(source);
  return { test: (value: string) => re.test(value) };
}

export function matches(m: Matcher, value: string | null | undefined): boolean {
  if (value === null || value === undefined) {
    return false;
  }
  return 'exact' in m ? m.exact === value : m.regexp.test(value);
}

type Token =
  | { readonly kind: 'lit'; readonly text: string; readonly char: string }
  | { readonly kind: 'dot' | 'bol' | 'eol' | 'open' | 'close' | 'quant' | 'flags' | 'class' | 'alt'; readonly text: string };

const QUANT = /^(?:[*+?]|\{\d+(?:,\d*)?\})\??/;

/** Splits an RE2 pattern into the tokens the look-alike lint needs (it has compiled already). */
function tokenize(source: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source.charAt(i);
    const rest = source.slice(i);
    let m: RegExpExecArray | null;
    if (c === '\\') {
      if (source[i + 1] === 'Q') {
        const end = source.indexOf('\\E', i + 2);
        const quoted = source.slice(i + 2, end === -1 ? source.length : end);
        for (const ch of quoted) {
          out.push({ kind: 'lit', text: ch === '.' ? '\\.' : ch, char: ch });
        }
        i = end === -1 ? source.length : end + 2;
        continue;
      }
      m = /^\\(?:[pP]\{[^}]*\}|x\{[^}]*\}|x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/su.exec(rest);
      const text = m?.[0] ?? c;
      const anchor = text === '\\A' ? 'bol' : text === '\\z' ? 'eol' : null;
      out.push(anchor !== null ? { kind: anchor, text } : { kind: 'lit', text, char: text.length === 2 && !/[a-zA-Z0-9]/.test(text.charAt(1)) ? text.charAt(1) : '' });
      i += text.length;
    } else if (c === '[') {
      m = /^\[\^?\]?(?:\[:[a-z]+:\]|\\.|[^\]])*\]/su.exec(rest);
      const text = m?.[0] ?? rest;
      out.push({ kind: 'class', text });
      i += text.length;
    } else if (c === '(') {
      const flags = /^\(\?[a-zA-Z-]*\)/.exec(rest)?.[0];
      const text = flags ?? /^\((?:\?P?<[^>]*>|\?[a-zA-Z-]*:)?/.exec(rest)?.[0] ?? c;
      out.push({ kind: flags === undefined ? 'open' : 'flags', text });
      i += text.length;
    } else if ((m = QUANT.exec(rest)) !== null) {
      out.push({ kind: 'quant', text: m[0] });
      i += m[0].length;
    } else {
      const kinds: Record<string, Token['kind']> = { '.': 'dot', '^': 'bol', $: 'eol', ')': 'close', '|': 'alt' };
      const kind = kinds[c];
      out.push(kind === undefined ? { kind: 'lit', text: c, char: c } : ({ kind, text: c } as Token));
      i += c.length;
    }
  }
  return out;
}

/** The top-level alternatives of a token list (`a|b` → [[a], [b]]; `(a|b)` is one). */
function alternatives(tokens: readonly Token[]): Token[][] {
  const out: Token[][] = [[]];
  let depth = 0;
  for (const t of tokens) {
    if (t.kind === 'open') {
      depth++;
    } else if (t.kind === 'close') {
      depth--;
    }
    if (t.kind === 'alt' && depth === 0) {
      out.push([]);
    } else {
      out[out.length - 1]!.push(t);
    }
  }
  return out;
}

const isWildcard = (ts: readonly Token[], i: number): boolean => ts[i]?.kind === 'dot' && /^[*+]/.test(ts[i + 1]?.text ?? '') && ts[i + 1]?.kind === 'quant';

/** The fixed text of tokens (wildcards and classes dropped): what a look-alike is built around. */
function fixedText(ts: readonly Token[]): string {
  return ts.map((t, i) => (t.kind === 'lit' ? t.char : t.kind === 'dot' && ts[i + 1]?.kind !== 'quant' ? '.' : '')).join('');
}

/** What lets one alternative accept look-alikes, and the alternative rewritten without it. */
function lintAlternative(alt: readonly Token[], label: string, re: Re2Pattern): { problems: string[]; rewrite: string } {
  const problems: string[] = [];
  let start = 0;
  while (alt[start]?.kind === 'flags') {
    start++;
  }
  const leadingFlags = alt.slice(0, start).map((t) => t.text).join('');
  let body = alt.slice(start);
  const startAnchored = body[0]?.kind === 'bol';
  const endAnchored = body.at(-1)?.kind === 'eol';
  body = body.slice(startAnchored ? 1 : 0, endAnchored ? -1 : undefined);
  const literal = fixedText(body);
  const accepts = (lookAlike: string): string =>
    re.test(lookAlike) ? `so it also accepts ${JSON.stringify(lookAlike)}` : 'so it matches inside longer values';
  const beginsWild = isWildcard(body, 0);
  const endsWild = body.length >= 2 && isWildcard(body, body.length - 2);
  const endsAtSlash = body.at(-1)?.kind === 'lit' && (body.at(-1) as { char: string }).char === '/';
  if (!startAnchored && !beginsWild) {
    problems.push(`${label}no ^: it matches anywhere, ${accepts(`https://evil.example/?${literal}`)}`);
  }
  if (!endAnchored && !endsWild && !endsAtSlash) {
    problems.push(`${label}no $: it matches anywhere, ${accepts(`${literal}.evil.example`)}`);
  }
  const dots: string[] = [];
  const rewritten = body.map((t, i) => {
    if (t.kind === 'dot' && !(body[i + 1]?.kind === 'quant')) {
      dots.push(`${(body[i - 1] as { char?: string } | undefined)?.char ?? ''}.${(body[i + 1] as { char?: string } | undefined)?.char ?? ''}`);
      return '\\.';
    }
    return t.text;
  });
  if (dots.length > 0) {
    problems.push(`${label}an unescaped . matches any character (${dots.map((d) => JSON.stringify(d)).join(', ')}): write \\. for a literal dot`);
  }
  body.forEach((t, i) => {
    const prev = body[i - 1];
    if (i > 0 && isWildcard(body, i) && prev?.kind === 'lit' && /[\p{L}\p{N}]/u.test(prev.char)) {
      const before = fixedText(body.slice(0, i));
      problems.push(
        `${label}${JSON.stringify(`${prev.char}${t.text}${body[i + 1]!.text}`)} lets the name run on, ${accepts(`${before}-evil`)}: end the fixed part at a separator such as / or @`,
      );
    }
  });
  const tail = !endAnchored && endsAtSlash ? '.*' : '';
  return { problems, rewrite: `${leadingFlags}${rewritten.join('')}${tail}` };
}

/** What {@link lintRegexp} found: each way the pattern accepts look-alikes, and a stricter rewrite. */
export interface RegexpLint {
  readonly problems: readonly string[];
  /** The pattern anchored at both ends with literal dots escaped; null when nothing needs changing. */
  readonly suggestion: string | null;
}

/**
 * Why an RE2 pattern (matched anywhere, as cosign matches it) accepts values that only look like
 * the ones it was written for: no `^` (a prefix can be added), no `$` (a suffix can be added,
 * unless the pattern ends at a `/`), an unescaped `.` (any character), or a `.*` right after a
 * letter (`acme.*` accepts `acme-evil`). Patterns that do not compile give no lint.
 *
 * @example lintRegexp('alice@example\\.com') // no $ … suggestion '^alice@example\\.com$'
 */
export function lintRegexp(source: string): RegexpLint {
  let re: Re2Pattern;
  try {
    re = compileRe2(source);
  } catch {
    return { problems: [], suggestion: null };
  }
  const alts = alternatives(tokenize(source));
  const linted = alts.map((alt, i) => lintAlternative(alt, alts.length > 1 ? `alternative ${i + 1}: ` : '', re));
  const problems = linted.flatMap((l) => l.problems);
  if (problems.length === 0) {
    return { problems, suggestion: null };
  }
  const joined = linted.map((l) => l.rewrite).join('|');
  const suggestion = `^${alts.length > 1 ? `(?:${joined})` : joined}$`;
  if (suggestion === source) {
    return { problems, suggestion: null };
  }
  try {
    compileRe2(suggestion);
  } catch {
    return { problems, suggestion: null };
  }
  return { problems, suggestion };
}

/** Issuers of unrelated providers: an issuer regexp that accepts all of them accepts any issuer. */
const ANY_ISSUER_PROBES = ['https://evil.example', 'https://accounts.evil.example/oauth2', 'https://token.evil.example/'] as const;

/**
 * The warnings for every `-regexp` property anywhere in a policy document (as parsed from YAML),
 * each as `path: message`, the path in the dotted form `check.ts` locates. A pattern that does not
 * compile is left to the policy's own errors.
 */
export function regexpWarnings(doc: unknown, path: readonly string[] = []): string[] {
  if (doc === null || typeof doc !== 'object') {
    return [];
  }
  const out: string[] = [];
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const at = [...path, key];
    if (typeof value === 'string' && key.endsWith('-regexp')) {
      out.push(...warningsFor(at.join('.'), key, value));
    } else {
      out.push(...regexpWarnings(value, at));
    }
  }
  return out;
}

function warningsFor(at: string, key: string, source: string): string[] {
  const lint = lintRegexp(source);
  const strict = lint.suggestion === null ? '' : `; strict: ${JSON.stringify(lint.suggestion)}`;
  const out = lint.problems.length === 0 ? [] : [`${at}: ${JSON.stringify(source)} accepts look-alikes: ${lint.problems.join('; ')}${strict}`];
  if (key.includes('issuer')) {
    try {
      const re = compileRe2(source);
      if (ANY_ISSUER_PROBES.every((probe) => re.test(probe))) {
        out.push(`${at}: ${JSON.stringify(source)} accepts any OIDC issuer: name the issuer (certificate-oidc-issuer) or anchor the pattern`);
      }
    } catch {
      // reported by the policy's errors
    }
  }
  return out;
}
