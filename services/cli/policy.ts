import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/logger.ts';
import type { Kysely } from 'kysely';
import { openDb } from '../common/db/client.ts';
import * as decisions from '../common/db/queries/decisions.ts';
import * as images from '../common/db/queries/images.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { AttestationCheck } from '../common/domain/decision.ts';
import { requiredPredicateTypes } from '../common/policy/attestations.ts';
import { decide } from '../common/policy/evaluate.ts';
import { formatImported, importPolicies, PolicyImportError } from '../common/policy/import/import.ts';
import { loadPolicy } from '../common/policy/load.ts';
import { checkPolicyText, formatProblem } from '../common/policy/check.ts';
import { parsePolicy, type Policy } from '../common/policy/policy.ts';
import { createProgressLine, type ProgressLine } from './progress.ts';
import { formatTable } from './table.ts';
import { UsageError, type Command, type CommandIo } from './command.ts';

export const POLICY_USAGE = `usage: signet policy check <file> [--json]
       signet policy dry-run <file> [--limit N] [--json]
       signet policy import <file> [--registry HOST]... [--output FILE] [--json]

check: checks a policy file as Signet would load it (SIGNET_POLICY): the schema, image-path
globs, identity and issuer regular expressions, keys, thresholds, and rules that would accept any
identity. Every problem is printed as file:line:column: path: message. Every -regexp pattern that
accepts look-alikes (it matches anywhere in the value, as cosign's do: no ^ or $, an unescaped .)
is printed as file:line:column: path: warning: message, with a strict rewrite; warnings alone
leave the policy valid.
Exit codes: 0 valid (its version is printed); 1 invalid; 2 usage or an unreadable file.

dry-run: decides every image in the ledger under the policy in force (SIGNET_POLICY) and under
<file>, from stored material, and lists what would flip from allow to deny (with the new reason,
and which attestation requirement is not met and why) and from deny to allow. Nothing is written. --limit caps the images listed (default 50).
Exit codes: 0 nothing would be denied that is allowed now; 1 failed or <file> invalid; 2 usage;
3 some image would flip from allow to deny.

import: reads sigstore policy-controller ClusterImagePolicies or Kyverno ClusterPolicies/Policies
(verifyImages rules) and writes the equivalent Signet policy (to --output, else stdout), with
everything it cannot express listed at its top and on stderr. Patterns that name no registry
(**, *) are written for each --registry. Exit codes: 0 everything expressed; 1 not such a policy,
or nothing Signet can express; 2 usage or an unreadable file; 3 written, with parts not expressed.
`;

interface Flip {
  readonly image: string;
  readonly from: 'allow' | 'deny';
  readonly to: 'allow' | 'deny';
  readonly reason: string;
  readonly message: string;
  /** The new rule's attestation requirements that are not met, each with why (absent when it has none). */
  readonly attestations?: readonly AttestationCheck[];
}

/** Both policies over the whole ledger, page by page, from stored material only. */
async function dryRun(db: Kysely<DB>, current: Policy, next: Policy, progress: ProgressLine): Promise<{ images: number; flips: Flip[] }> {
  const flips: Flip[] = [];
  const predicateTypes = [...new Set([...requiredPredicateTypes(current), ...requiredPredicateTypes(next)])];
  let decided = 0;
  let after = '0';
  for (;;) {
    const ids = await images.idsAfter(db, after, 500);
    if (ids.length === 0) {
      break;
    }
    after = ids.at(-1)!;
    progress.update(`policy dry-run: ${decided} images decided, ${flips.length} would flip`, decided, null);
    const at = new Date();
    for (const input of await decisions.loadInputs(db, ids, predicateTypes)) {
      decided++;
      const was = decide(current, input.registry, input.repository, input.facts, at);
      const now = decide(next, input.registry, input.repository, input.facts, at);
      if (was.allowed !== now.allowed) {
        const unmet = now.attestations?.filter((c) => !c.satisfied);
        flips.push({
          image: `${input.registry}/${input.repository}@${input.digest}`,
          from: was.allowed ? 'allow' : 'deny',
          to: now.allowed ? 'allow' : 'deny',
          reason: now.reason,
          message: now.message,
          ...(unmet === undefined ? {} : { attestations: unmet }),
        });
      }
    }
  }
  return { images: decided, flips };
}

export const policy: Command = {
  summary: 'check a policy file with line numbers, or dry-run it over the whole ledger',
  usage: POLICY_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        limit: { type: 'string', default: '50' },
        registry: { type: 'string', multiple: true, default: [] },
        output: { type: 'string' },
      },
    });
    if (!['check', 'dry-run', 'import'].includes(positionals[0] ?? '') || positionals.length !== 2) {
      throw new UsageError('expected: policy check <file>, policy dry-run <file>, or policy import <file>');
    }
    const file = positionals[1]!;
    if (positionals[0] === 'import') {
      return runImport(file, { registries: values.registry, output: values.output ?? null, json: values.json }, io);
    }
    if (positionals[0] === 'dry-run') {
      const limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) {
        throw new UsageError('--limit must be a positive integer');
      }
      let next: Policy;
      try {
        next = parsePolicy(await readFile(file, 'utf8'), file);
      } catch (err) {
        io.stderr.write(`signet policy dry-run: ${(err as Error).message}\n(signet policy check ${file} shows where)\n`);
        return 1;
      }
      const { policy: current } = await loadPolicy(config.policyPath);
      const db = openDb(config.database, log);
      try {
        const progress = createProgressLine(io.stderr);
        const { images, flips } = await dryRun(db, current, next, progress);
        progress.done();
        const denied = flips.filter((f) => f.to === 'deny');
        const allowed = flips.filter((f) => f.to === 'allow');
        if (values.json) {
          io.stdout.write(`${JSON.stringify({ images, currentVersion: current.version, newVersion: next.version, allowToDeny: denied, denyToAllow: allowed })}\n`);
        } else {
          io.stdout.write(`${images} images decided under ${file} (${next.version.slice(0, 19)}…) against the policy in force (${current.version.slice(0, 19)}…): ${denied.length} would be denied, ${allowed.length} would be allowed\n`);
          if (denied.length > 0) {
            io.stdout.write(`\nallow → deny${denied.length > limit ? ` (first ${limit})` : ''}\n`);
            io.stdout.write(formatTable(['image', 'reason', 'why'], denied.slice(0, limit).map((f) => [f.image, f.reason, f.message])));
          }
          if (allowed.length > 0) {
            io.stdout.write(`\ndeny → allow${allowed.length > limit ? ` (first ${limit})` : ''}\n`);
            io.stdout.write(formatTable(['image', 'reason'], allowed.slice(0, limit).map((f) => [f.image, f.reason])));
          }
        }
        return denied.length > 0 ? 3 : 0;
      } finally {
        await db.destroy();
      }
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      io.stderr.write(`signet policy: cannot read ${file}: ${(err as Error).message}\n`);
      return 2;
    }
    const result = checkPolicyText(text, file);
    const { warnings } = result;
    if (values.json) {
      const body = 'version' in result ? { valid: true, version: result.version } : { valid: false, problems: result.problems };
      io.stdout.write(`${JSON.stringify({ ...body, warnings })}\n`);
      return 'version' in result ? 0 : 1;
    }
    for (const p of 'problems' in result ? result.problems : []) {
      io.stdout.write(`${formatProblem(file, p)}\n`);
    }
    for (const w of warnings) {
      io.stdout.write(`${formatProblem(file, w, 'warning')}\n`);
    }
    const counted = warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`;
    if ('version' in result) {
      io.stdout.write(`${file}: valid (policy version ${result.version})${counted}\n`);
      return 0;
    }
    io.stdout.write(`${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}${counted}\n`);
    return 1;
  },
};

/** `signet policy import`: a peer's policies → a Signet policy, and what it could not express. */
async function runImport(file: string, opts: { registries: readonly string[]; output: string | null; json: boolean }, io: CommandIo): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    io.stderr.write(`signet policy import: cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  let result: ReturnType<typeof importPolicies>;
  try {
    result = importPolicies(text, { registries: opts.registries });
  } catch (err) {
    if (!(err instanceof PolicyImportError)) {
      throw err;
    }
    io.stderr.write(`signet policy import: ${file}: ${err.message}\n`);
    return 1;
  }
  const written = result.yaml === '' ? '' : formatImported(result, file);
  if (opts.json) {
    io.stdout.write(`${JSON.stringify({ policy: result.policy, unexpressed: result.unexpressed })}\n`);
  } else if (written !== '' && opts.output !== null) {
    await writeFile(opts.output, written);
  } else if (written !== '') {
    io.stdout.write(written);
  }
  for (const u of result.unexpressed) {
    io.stderr.write(`not expressed: ${u}\n`);
  }
  if (written === '') {
    io.stderr.write(`signet policy import: ${file}: nothing Signet can express\n`);
    return 1;
  }
  return result.unexpressed.length > 0 ? 3 : 0;
}
