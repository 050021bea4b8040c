import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkPolicyText, formatProblem } from './check.ts';
import { DEFAULT_MODE } from './rollout.ts';
import { parsePolicy, PolicyConfigError, type Policy } from './policy.ts';

/**
 * The policy in force when none is configured: nothing is covered, so every image is denied
 * (`not_covered_by_policy`). Signet never defaults to allowing.
 */
export const EMPTY_POLICY: Policy = {
  version: `sha256:${createHash('sha256').update('{}').digest('hex')}`,
  withVerification: new Map(),
  withoutVerification: new Map(),
  mode: DEFAULT_MODE,
  scopes: [],
  exemptions: [],
  breakGlassNamespaces: [],
};

/** A parsed policy and the text it was parsed from (recorded with every decision's policy version). */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly source: string;
  /** `file:line:column: path: warning: …` for each `-regexp` that accepts look-alikes (`signet policy check`'s warnings). */
  readonly warnings?: readonly string[];
}

/** Reads and parses `SIGNET_POLICY`; throws {@link PolicyConfigError} listing every problem. */
export async function loadPolicy(path: string | null): Promise<LoadedPolicy> {
  if (path === null) {
    return { policy: EMPTY_POLICY, source: '{}' };
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PolicyConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  try {
    const policy = parsePolicy(text, path);
    return { policy, source: text, warnings: checkPolicyText(text, path).warnings.map((w) => formatProblem(path, w, 'warning')) };
  } catch (err) {
    if (!(err instanceof PolicyConfigError)) {
      throw err;
    }
    // Say where: the same file:line:column lines `signet policy check` prints.
    const checked = checkPolicyText(text, path);
    throw 'problems' in checked ? new PolicyConfigError(path, err.issues, checked.problems.map((p) => formatProblem(path, p))) : err;
  }
}
