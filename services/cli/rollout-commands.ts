import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import { parseAllDocuments } from 'yaml';
import type { Config } from '../common/config.ts';
import type { DB } from '../common/db/schema.generated.ts';
import { ImageReferenceError, parseImageReference } from '../common/domain/image-ref.ts';
import { breakGlassRequest, imageSites } from '../common/domain/workload.ts';
import type { Logger } from '../common/logger.ts';
import { loadPolicy } from '../common/policy/load.ts';
import { namespaceIndex } from '../common/policy/namespaces.ts';
import { parsePolicy, type Policy } from '../common/policy/policy.ts';
import { type ImageVerdict, judge } from '../core/admission-verdict.ts';
import { explainImage, type ImageExplanation } from '../core/explain-image.ts';
import { imageReferenceArgument, UsageError, type Command, type CommandIo } from './command.ts';
import { withDb } from './ledger-commands.ts';
import { formatTable } from './table.ts';

/** Exit code when admission would refuse something. */
export const EXIT_DENIED = 3;

export const EXPLAIN_USAGE = `usage: signet explain <image reference> [--namespace N] [--json]

Why an image is (not) admitted in a namespace, from the ledger and the policy in force
(SIGNET_POLICY; no registry call): the namespace's scope, the rule that applies and its mode, each
requirement of the rule and whether it is met, each signature and attestation and why it counts or
not, and the exemption or break-glass that would admit it there now. Without --namespace the
answer is the one outside every scope. The same explanation is GraphQL's \`explain\`.

Exit codes: 0 admission would admit it (allowed, warned, audited or exempted); 2 usage;
3 admission would deny it.
`;

export const AUDIT_USAGE = `usage: signet audit <file> [--policy candidate.yaml] [--json]

What would break: reads \`kubectl get pods -A -o json\` (or any JSON/YAML list or multi-document
file of Pods and workloads: Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
Job, CronJob) and decides every container image in its namespace, from the ledger, under the policy
in force (SIGNET_POLICY) or the candidate --policy. Lists each workload with an image the policy
denies, and what admission would do with it: denied (enforce), warned (warn), audited (audit: it
would be denied once enforced), exempted, or break_glass.

Exit codes: 0 nothing would be denied; 1 failed (unreadable ledger, bad policy); 2 usage or an
unreadable file; 3 something would be denied.
`;

/** What admission would make of the explained decision (with no break-glass asked). */
function verdictOf(policy: Policy, e: ImageExplanation): ImageVerdict {
  return judge({ image: e.image, ...e.decision, publicMessage: e.decision.message }, namespaceIndex(policy), e.namespace, Date.now(), false).verdict;
}

function explanationText(e: ImageExplanation, verdict: ImageVerdict): string {
  const lines = [
    `image        ${e.image}${e.digest === null ? '' : ` (${e.digest})`}${e.indexed ? '' : ' — not indexed by Signet'}`,
    `namespace    ${e.namespace ?? '(none)'}${e.scope === null ? ' (no scope: the top-level rules)' : ` (scope ${e.scope})`}`,
    `rule         ${e.rule ?? '(none covers this image)'}`,
    `mode         ${e.mode}`,
    `decision     ${e.decision.allowed ? 'allow' : 'deny'}: ${e.decision.reason} — ${e.decision.message}`,
    `admission    ${verdict}`,
    `exemption    ${e.exemption === null ? 'none' : `${e.exemption.name} until ${e.exemption.expires} (${e.exemption.reason})`}`,
    `break-glass  ${e.breakGlassAllowed ? 'honoured in this namespace' : 'not honoured in this namespace'}`,
    '',
  ];
  let text = lines.join('\n');
  if (e.requirements.length > 0) {
    text += `\nrequirements\n${formatTable(['met', 'kind', 'requirement', 'detail'], e.requirements.map((r) => [r.satisfied ? 'yes' : 'no', r.kind, r.description, r.detail]))}`;
  }
  if (e.evidence.length > 0) {
    text += `\nsignatures and attestations\n${formatTable(['counts', 'outcome', 'signer', 'issuer', 'why'], e.evidence.map((s) => [s.counts ? 'yes' : 'no', s.outcome, s.subject ?? '', s.issuer ?? '', s.why]))}`;
  }
  return text;
}

export const explainCommand: Command = {
  summary: 'why an image is (not) admitted in a namespace: rule, mode, each requirement and signature',
  usage: EXPLAIN_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, namespace: { type: 'string' } },
    });
    const ref = imageReferenceArgument(positionals);
    const { policy } = await loadPolicy(config.policyPath);
    const e = await withDb(config, log, (db) => explainImage(db, policy, positionals[0]!, ref, values.namespace ?? null));
    const verdict = verdictOf(policy, e);
    io.stdout.write(values.json ? `${JSON.stringify({ ...e, admission: verdict })}\n` : explanationText(e, verdict));
    return verdict === 'denied' ? EXIT_DENIED : 0;
  },
};

/** One workload of the audited file. */
interface Workload {
  readonly namespace: string;
  readonly kind: string;
  readonly name: string;
  readonly object: Record<string, unknown>;
}

/** Every workload of a JSON document, a YAML multi-document file, or their `List`s (kubectl's `items`). */
export function workloadsIn(text: string): Workload[] {
  const docs = parseAllDocuments(text, { uniqueKeys: false });
  const found: Workload[] = [];
  const visit = (value: unknown) => {
    if (value === null || typeof value !== 'object') {
      return;
    }
    const object = value as Record<string, unknown>;
    if (Array.isArray(object.items)) {
      object.items.forEach(visit);
      return;
    }
    const metadata = (object.metadata ?? {}) as { name?: unknown; namespace?: unknown };
    if (typeof object.kind === 'string') {
      found.push({
        kind: object.kind,
        name: typeof metadata.name === 'string' ? metadata.name : '(unnamed)',
        namespace: typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default',
        object,
      });
    }
  };
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      throw new UsageError(`not JSON or YAML: ${doc.errors[0]!.message.split('\n')[0]!}`);
    }
    visit(doc.toJS());
  }
  return found;
}

interface AuditRow {
  readonly namespace: string;
  readonly workload: string;
  readonly image: string;
  readonly admission: ImageVerdict;
  readonly reason: string;
  readonly rule: string | null;
  readonly mode: string;
  readonly message: string;
}

async function audit(db: Kysely<DB>, policy: Policy, workloads: readonly Workload[]): Promise<AuditRow[]> {
  const index = namespaceIndex(policy);
  const explained = new Map<string, Promise<ImageExplanation | null>>();
  const rows: AuditRow[] = [];
  for (const w of workloads) {
    const breakGlass = breakGlassRequest(w.object) !== null && index.breakGlassAllowed(w.namespace);
    for (const site of imageSites(w.kind, w.object)) {
      const key = `${w.namespace}\n${site.image}`;
      let e = explained.get(key);
      if (e === undefined) {
        e = explainReference(db, policy, site.image, w.namespace);
        explained.set(key, e);
      }
      const x = await e;
      const decision = x?.decision ?? { allowed: false, reason: 'invalid_reference', message: `${site.image} is not an image reference`, rule: null, mode: policy.mode };
      if (decision.allowed) {
        continue;
      }
      const { verdict } = judge({ image: site.image, ...decision, publicMessage: decision.message }, index, w.namespace, Date.now(), breakGlass);
      rows.push({ namespace: w.namespace, workload: `${w.kind}/${w.name}`, image: site.image, admission: verdict, reason: decision.reason, rule: decision.rule, mode: decision.mode, message: decision.message });
    }
  }
  return rows;
}

function explainReference(db: Kysely<DB>, policy: Policy, image: string, namespace: string): Promise<ImageExplanation | null> {
  let ref;
  try {
    ref = parseImageReference(image);
  } catch (err) {
    if (err instanceof ImageReferenceError) {
      return Promise.resolve(null);
    }
    throw err;
  }
  return explainImage(db, policy, image, ref, namespace);
}

export const auditCommand: Command = {
  summary: 'what would break: each workload of a file (kubectl get pods -A -o json) that would be denied or warned',
  usage: AUDIT_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, policy: { type: 'string' } },
    });
    if (positionals.length !== 1) {
      throw new UsageError('name exactly one file (- reads standard input is not supported: save kubectl output to a file)');
    }
    let text: string;
    try {
      text = await readFile(positionals[0]!, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${positionals[0]!}: ${(err as Error).message}`);
    }
    const workloads = workloadsIn(text);
    const policy = values.policy === undefined ? (await loadPolicy(config.policyPath)).policy : parsePolicy(await readFile(values.policy, 'utf8'), values.policy);
    const rows = await withDb(config, log, (db) => audit(db, policy, workloads));
    const denied = rows.filter((r) => r.admission === 'denied');
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ policyVersion: policy.version, workloads: workloads.length, denied: denied.length, findings: rows })}\n`);
    } else {
      io.stdout.write(`${workloads.length} workload(s) under policy ${policy.version.slice(0, 19)}…: ${denied.length} image(s) would be denied, ${rows.length - denied.length} admitted despite a denial (warned, audited, exempted or break-glass)\n`);
      if (rows.length > 0) {
        io.stdout.write(formatTable(['namespace', 'workload', 'image', 'admission', 'reason', 'mode', 'rule'], rows.map((r) => [r.namespace, r.workload, r.image, r.admission, r.reason, r.mode, r.rule ?? ''])));
      }
    }
    return denied.length > 0 ? EXIT_DENIED : 0;
  },
};
