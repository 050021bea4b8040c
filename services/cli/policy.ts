import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/logger.ts';
import { parsePolicy, PolicyConfigError } from '../common/policy/policy.ts';
import { UsageError, type Command, type CommandIo } from './command.ts';

export const POLICY_USAGE = `usage: signet policy check <file> [--json]

Checks a policy file as Signet would load it (SIGNET_POLICY): the schema, image-path globs,
identity and issuer regular expressions, keys, thresholds, and rules that would accept any
identity. Every problem is printed as file:line:column: path: message.

Exit codes: 0 valid (its version is printed); 1 invalid; 2 usage or an unreadable file.
`;

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

/** Every problem of a policy text, with line and column where the text has them. */
export function checkPolicyText(text: string, source: string): { version: string } | { problems: PolicyProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((e) => ({ line: e.linePos?.[0].line ?? null, column: e.linePos?.[0].col ?? null, path: '(syntax)', message: e.message.split('\n')[0]! })),
    };
  }
  try {
    return { version: parsePolicy(text, source).version };
  } catch (err) {
    if (!(err instanceof PolicyConfigError)) {
      throw err;
    }
    return {
      problems: err.issues.map((issue) => {
        const sep = issue.indexOf(': ');
        const path = sep === -1 ? '(root)' : issue.slice(0, sep);
        const message = sep === -1 ? issue : issue.slice(sep + 2);
        const node = locate(doc.contents, path === '(root)' ? '' : path);
        const pos = node?.range === undefined || node.range === null ? null : lines.linePos(node.range[0]);
        return { line: pos?.line ?? null, column: pos?.col ?? null, path, message };
      }),
    };
  }
}

export const policy: Command = {
  summary: 'check a policy file (schema, globs, regular expressions) with line numbers',
  usage: POLICY_USAGE,
  async run(args: readonly string[], io: CommandIo, _config: Config, _log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
    if (positionals[0] !== 'check' || positionals.length !== 2) {
      throw new UsageError('expected: policy check <file>');
    }
    const file = positionals[1]!;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      io.stderr.write(`signet policy: cannot read ${file}: ${(err as Error).message}\n`);
      return 2;
    }
    const result = checkPolicyText(text, file);
    if (values.json) {
      io.stdout.write(`${JSON.stringify('version' in result ? { valid: true, version: result.version } : { valid: false, problems: result.problems })}\n`);
    } else if ('version' in result) {
      io.stdout.write(`${file}: valid (policy version ${result.version})\n`);
    } else {
      for (const p of result.problems) {
        io.stdout.write(`${file}:${p.line ?? '?'}:${p.column ?? '?'}: ${p.path}: ${p.message}\n`);
      }
      io.stdout.write(`${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}\n`);
    }
    return 'version' in result ? 0 : 1;
  },
};
