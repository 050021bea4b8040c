import { visit, type DocumentNode } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

/** C0 control characters (NUL included) and DEL: nothing Signet is asked about contains them. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is matched
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Each parsed document's scan (yoga's parser cache hands out the same document for the same text). */
const scanned = new WeakMap<DocumentNode, string | null>();

function literalWithControl(document: DocumentNode): string | null {
  const known = scanned.get(document);
  if (known !== undefined) {
    return known;
  }
  let found: string | null = null;
  visit(document, {
    StringValue(node) {
      if (found === null && CONTROL.test(node.value)) {
        found = node.value;
      }
    },
  });
  scanned.set(document, found);
  return found;
}

function variableWithControl(value: unknown, path: string): string | null {
  if (typeof value === 'string') {
    return CONTROL.test(value) ? path : null;
  }
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = variableWithControl(v, `${path}[${i}]`);
      if (found !== null) {
        return found;
      }
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = variableWithControl(v, `${path}.${k}`);
      if (found !== null) {
        return found;
      }
    }
  }
  return null;
}

/**
 * Refuses an operation whose string arguments (literals or variables) hold control characters,
 * with BAD_USER_INPUT, before any resolver runs: such a string can only be a probe, and Postgres
 * refuses NUL in text, which would otherwise surface as an internal error.
 */
export function controlCharacterGuard(): Plugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const literal = literalWithControl(args.document as DocumentNode);
      const variable = literal === null ? variableWithControl(args.variableValues ?? {}, '$') : null;
      if (literal !== null || variable !== null) {
        const where = variable === null ? 'a string argument' : `variable ${variable.replace(/^\$\./, '$')}`;
        setResultAndStopExecution({
          errors: [createGraphQLError(`${where} contains a control character (NUL or below U+0020, or DEL)`, { extensions: { code: 'BAD_USER_INPUT' } })],
        });
      }
    },
  };
}
