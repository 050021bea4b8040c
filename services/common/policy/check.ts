import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { regexpWarnings } from './matcher.ts';
import { parsePolicy, PolicyConfigError } from './policy.ts';

export interface PolicyProblem {
  readonly line: number | null;
  readonly column: number | null;
  readonly path: string;
  readonly message: string;
}

/**
 * Finds the YAML node a dotted issue path names. Keys may themselves contain dots (registry hosts,
 * globs), so at each mapping the longest key that prefixes the rest of the path wins.
 */
function locate(root: Node | null, path: string): Node | null {
  let node: Node | null = root;
  let rest = path;
  while (node !== null && rest !== '') {
    let next: Node | null = null;
    let used = 0;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : null;
        if (key !== null && (rest === key || rest.startsWith(`${key}.`)) && key.length > used) {
          const value = pair.value as Node | null;
          // A path ending at a key whose value is a block names the key itself (a bad glob or host).
          next = rest === key && (value === null || isMap(value) || isSeq(value)) ? (pair.key as Node) : (value ?? (pair.key as Node));
          used = key.length;
        }
      }
    } else if (isSeq(node)) {
      const m = /^(\d+)(?:\.|$)/.exec(rest);
      if (m !== null) {
        next = (node.items[Number(m[1])] as Node | undefined) ?? null;
        used = m[1]!.length;
      }
    }
    if (next === null) {
      break;
    }
    node = next;
    rest = rest.slice(used).replace(/^\./, '');
  }
  return node;
}

/**
 * Where in the file a CEL problem is (`CEL: <line>:<column>: …` within an attestation condition):
 * exact for one-line plain or quoted scalars and for literal blocks (`|`), whose text is the
 * file's; null for the others (folded, escapes), which point at the condition itself.
 */
function celPosition(node: Node, message: string, text: string, lines: LineCounter): { line: number; col: number } | null {
  const m = /^CEL: (\d+):(\d+): /.exec(message);
  if (m === null || !isScalar(node) || node.range === undefined || node.range === null) {
    return null;
  }
  const [line, col] = [Number(m[1]), Number(m[2])];
  const start = node.range[0];
  if ((node.type === 'PLAIN' || node.type === 'QUOTE_SINGLE' || node.type === 'QUOTE_DOUBLE') && line === 1 && !text.slice(start, node.range[1]).includes('\n')) {
    return lines.linePos(start + (node.type === 'PLAIN' ? 0 : 1) + col - 1);
  }
  if (node.type === 'BLOCK_LITERAL') {
    const header = lines.linePos(start);
    const first = text.split('\n')[header.line] ?? '';
    return { line: header.line + line, col: first.length - first.trimStart().length + col };
  }
  return null;
}

/**
 * Every problem of a policy text, with line and column where the text has them, and the warnings
 * about `-regexp` patterns that accept look-alikes (a valid policy can have warnings).
 */
export function checkPolicyText(
  text: string,
  source: string,
): ({ version: string } | { problems: PolicyProblem[] }) & { warnings: PolicyProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((e) => ({ line: e.linePos?.[0].line ?? null, column: e.linePos?.[0].col ?? null, path: '(syntax)', message: e.message.split('\n')[0]! })),
      warnings: [],
    };
  }
  const at = (issue: string): PolicyProblem => {
    const sep = issue.indexOf(': ');
    const path = sep === -1 ? '(root)' : issue.slice(0, sep);
    const message = sep === -1 ? issue : issue.slice(sep + 2);
    const node = locate(doc.contents, path === '(root)' ? '' : path);
    const pos = node?.range === undefined || node.range === null ? null : (celPosition(node, message, text, lines) ?? lines.linePos(node.range[0]));
    return { line: pos?.line ?? null, column: pos?.col ?? null, path, message };
  };
  const warnings = regexpWarnings(doc.toJS({ maxAliasCount: 100 })).map(at);
  try {
    return { version: parsePolicy(text, source).version, warnings };
  } catch (err) {
    if (!(err instanceof PolicyConfigError)) {
      throw err;
    }
    return { problems: err.issues.map(at), warnings };
  }
}

/** `file:line:column: path: message`, the form editors and CI annotations jump to. */
export function formatProblem(file: string, p: PolicyProblem, severity: 'error' | 'warning' = 'error'): string {
  return `${file}:${p.line ?? '?'}:${p.column ?? '?'}: ${p.path}: ${severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}
