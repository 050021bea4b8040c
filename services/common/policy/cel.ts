import { celEnv, type CelInput, isCelError, parse, plan } from '@bufbuild/cel';
import type { Expr } from '@bufbuild/cel-spec/cel/expr/syntax_pb.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RE2JS } from '@bufbuild/re2';

// Attestation conditions in CEL (the language of Kubernetes ValidatingAdmissionPolicy and Kyverno's
// newer policies), evaluated by @bufbuild/cel: `matches()` is RE2, as in cel-go, so a condition
// means here what it means in a cluster. @bufbuild/cel has no public type checker, so compiling
// also walks the parsed expression for names nobody declared and RE2 literals that do not compile.

/** The names a condition may read. */
export const CONDITION_VARIABLES = {
  statement: 'the whole in-toto statement (_type, subject, predicateType, predicate)',
  predicate: "the statement's predicate",
  predicateType: "the statement's predicate type URI",
  subject: "the statement's subjects",
  signer: 'who signed the attestation: {subject, issuer}',
  signedAt: 'when it was signed (timestamp): Rekor integrated time, else a TSA time, else when Signet first saw it',
  now: 'the time of the decision (timestamp); a condition that reads it gives the decision an expiry',
} as const;

export type ConditionVariables = { readonly [K in Exclude<keyof typeof CONDITION_VARIABLES, 'now'>]: unknown } & { readonly signedAt: Date };

/** A compiled condition: `evaluate` answers true, false, or why it could not (an error, a non-boolean). */
export interface CompiledCondition {
  readonly source: string;
  /** Reads `now`: its answer changes with time alone. */
  readonly usesNow: boolean;
  evaluate(vars: ConditionVariables, now: Date): boolean | { readonly error: string };
}

/** CEL's type identifiers (`type(x) == list`), names a condition may read beside the variables. */
const TYPE_NAMES = ['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn'];

/** Compiled RE2 patterns by source: conditions run per attestation per decision; patterns are few. */
const regexCache = new Map<string, { test(text: string): boolean }>();
const re2 = {
  compile(pattern: string) {
    let m = regexCache.get(pattern);
    if (m === undefined) {
      const compiled = RE2JS.compile(pattern);
      m = { test: (text: string) => compiled.test(text) };
      if (regexCache.size >= 512) {
        regexCache.delete(regexCache.keys().next().value!);
      }
      regexCache.set(pattern, m);
    }
    return m;
  },
};
const env = celEnv({ re2 });

/** Where in the expression (1-based line:column) a parser offset is. */
function position(source: string, offset: number): string {
  const before = source.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  return `${line}:${offset - before.lastIndexOf('\n')}`;
}

/**
 * Names read but never declared (a typo: `predicte.x`), and `matches()` patterns that are not RE2,
 * each with its position in the expression. Comprehension variables are declared within their
 * comprehension only.
 */
function lint(expr: Expr, positions: Readonly<Record<string, number>>, source: string): string[] {
  const problems: string[] = [];
  const at = (e: Expr) => position(source, positions[String(e.id)] ?? 0);
  const walk = (e: Expr | undefined, scope: ReadonlySet<string>): void => {
    if (e === undefined) {
      return;
    }
    const k = e.exprKind;
    switch (k.case) {
      case 'identExpr':
        if (!scope.has(k.value.name)) {
          problems.push(`${at(e)}: undeclared name ${JSON.stringify(k.value.name)} (declared: ${Object.keys(CONDITION_VARIABLES).join(', ')})`);
        }
        return;
      case 'selectExpr':
        return walk(k.value.operand, scope);
      case 'callExpr': {
        const { target, args, function: fn } = k.value;
        const pattern = args[0]?.exprKind;
        if (fn === 'matches' && pattern?.case === 'constExpr' && pattern.value.constantKind.case === 'stringValue') {
          try {
            RE2JS.compile(pattern.value.constantKind.value);
          } catch (err) {
            problems.push(`${at(args[0]!)}: not an RE2 pattern: ${(err as Error).message}`);
          }
        }
        walk(target, scope);
        return args.forEach((a) => walk(a, scope));
      }
      case 'listExpr':
        return k.value.elements.forEach((el) => walk(el, scope));
      case 'structExpr':
        if (k.value.messageName !== '') {
          problems.push(`${at(e)}: message ${JSON.stringify(k.value.messageName)} cannot be built here (only maps and lists)`);
        }
        return k.value.entries.forEach((entry) => {
          walk(entry.keyKind.case === 'mapKey' ? entry.keyKind.value : undefined, scope);
          walk(entry.value, scope);
        });
      case 'comprehensionExpr': {
        const c = k.value;
        walk(c.iterRange, scope);
        walk(c.accuInit, scope);
        const inner = new Set([...scope, c.iterVar, c.iterVar2, c.accuVar].filter((n) => n !== ''));
        walk(c.loopCondition, inner);
        walk(c.loopStep, inner);
        return walk(c.result, new Set([...scope, c.accuVar]));
      }
      case 'constExpr':
      case undefined:
        return;
    }
  };
  walk(expr, new Set([...Object.keys(CONDITION_VARIABLES), ...TYPE_NAMES]));
  return problems;
}

function readsNow(expr: Expr | undefined): boolean {
  if (expr === undefined) {
    return false;
  }
  const k = expr.exprKind;
  switch (k.case) {
    case 'identExpr':
      return k.value.name === 'now';
    case 'selectExpr':
      return readsNow(k.value.operand);
    case 'callExpr':
      return readsNow(k.value.target) || k.value.args.some(readsNow);
    case 'listExpr':
      return k.value.elements.some(readsNow);
    case 'structExpr':
      return k.value.entries.some((en) => readsNow(en.value) || (en.keyKind.case === 'mapKey' && readsNow(en.keyKind.value)));
    case 'comprehensionExpr':
      return [k.value.iterRange, k.value.accuInit, k.value.loopCondition, k.value.loopStep, k.value.result].some(readsNow);
    case 'constExpr':
    case undefined:
      return false;
  }
}

/**
 * Compiles a condition, or returns every problem found in it (syntax errors as the parser words
 * them, with line:column inside the expression).
 */
export function compileCondition(source: string): CompiledCondition | { readonly problems: readonly string[] } {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (err) {
    return { problems: [(err as Error).message.replace(/^<input>:/, '').split('\n')[0]!] };
  }
  const problems = lint(parsed.expr, parsed.sourceInfo?.positions ?? {}, source);
  if (problems.length > 0) {
    return { problems };
  }
  const program = plan(env, parsed);
  return {
    source,
    usesNow: readsNow(parsed.expr),
    evaluate(vars, now) {
      const bindings: Record<string, CelInput> = {
        statement: vars.statement as CelInput,
        predicate: (vars.predicate ?? null) as CelInput,
        predicateType: vars.predicateType as CelInput,
        subject: (vars.subject ?? []) as CelInput,
        signer: vars.signer as CelInput,
        signedAt: timestampFromDate(vars.signedAt),
        now: timestampFromDate(now),
      };
      let result: unknown;
      try {
        result = program(bindings);
      } catch (err) {
        return { error: (err as Error).message };
      }
      if (isCelError(result)) {
        return { error: result.message };
      }
      return typeof result === 'boolean' ? result : { error: `the condition is not a boolean (${typeof result})` };
    },
  };
}
