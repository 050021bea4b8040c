import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import type { Config } from '../common/config.ts';
import { openDb } from '../common/db/client.ts';
import * as decisions from '../common/db/queries/decisions.ts';
import * as identities from '../common/db/queries/identities.ts';
import * as images from '../common/db/queries/images.ts';
import * as signatures from '../common/db/queries/signatures.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { Logger } from '../common/logger.ts';
import { decide } from '../common/policy/evaluate.ts';
import { loadPolicy } from '../common/policy/load.ts';
import { imageReferenceArgument, UsageError, type Command, type CommandIo } from './command.ts';
import { formatTable } from './table.ts';

/** Exit code when the ledger has no such image or identity. */
export const EXIT_NOT_FOUND = 3;

/** Runs `fn` with a database connection of its own, closed afterwards. */
export async function withDb<T>(config: Config, log: Logger, fn: (db: Kysely<DB>) => Promise<T>): Promise<T> {
  const db = openDb(config.database, log);
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

export const WHO_OWNS_USAGE = `usage: signet who-owns <image reference> [--json]

Who signed an image, from the ledger (no registry call): the decision under the policy in force
(SIGNET_POLICY), as the decision endpoints answer it, and every signature and attestation with its
signer, outcome, format and Rekor entry. The reference is host/repo@sha256:… or host/repo:tag (the
tag as the ledger last saw it).

Exit codes: 0 the image is in the ledger (owners or not); 2 usage; 3 the ledger has no such image.
`;

export const whoOwns: Command = {
  summary: 'who signed an image (signers, outcomes, Rekor entries), from the ledger',
  usage: WHO_OWNS_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
    const ref = imageReferenceArgument(positionals);
    const { policy } = await loadPolicy(config.policyPath);
    return withDb(config, log, async (db) => {
      const image = await images.find(db, ref.registry, ref.repository, ref.digest !== null ? { digest: ref.digest } : { tag: ref.tag ?? 'latest' });
      if (image === null) {
        io.stderr.write(`signet who-owns: ${positionals[0]!} is not in the ledger\n`);
        return EXIT_NOT_FOUND;
      }
      const sigs = await signatures.byImageIds(db, [image.id]);
      // A withdrawn signature (its artifact deleted or replaced in the registry) owns nothing.
      const owns = (s: (typeof sigs)[number]) => s.identityId !== null && s.withdrawnAt === null;
      const owners = [...new Map(sigs.filter(owns).map((s) => [s.identityId, { subject: s.subject, issuer: s.issuer }])).values()];
      const reference = `${image.registry}/${image.repository}@${image.digest}`;
      // Decided from the stored facts, as the decision endpoints decide an image they hold no answer for.
      const [input] = await decisions.loadInputs(db, [image.id]);
      const { allowed, reason, message, rule, policyVersion } = decide(policy, image.registry, image.repository, input?.facts ?? null);
      const decision = { allowed, reason, message, rule, policyVersion };
      if (values.json) {
        io.stdout.write(
          `${JSON.stringify({
            reference,
            status: image.status,
            statusReason: image.statusReason,
            decision,
            owners,
            signatures: sigs.map((s) => ({
              format: s.format,
              kind: s.kind,
              predicateType: s.predicateType,
              outcome: s.outcome,
              reason: s.reason,
              subject: s.subject,
              issuer: s.issuer,
              owner: owns(s),
              rekorLogIndex: s.rekorLogIndex,
              signedAt: s.signedAt.toISOString(),
              withdrawnAt: s.withdrawnAt?.toISOString() ?? null,
              withdrawnBy: s.withdrawnBy,
            })),
          })}\n`,
        );
        return 0;
      }
      io.stdout.write(`${reference}\ndecision: ${allowed ? 'allow' : 'deny'} (${reason}: ${message})\nstatus: ${image.status}${image.statusReason === null ? '' : ` (${image.statusReason})`}\nowners: ${owners.length === 0 ? 'none' : owners.map((o) => `${o.subject ?? '?'}${o.issuer === null ? '' : ` (${o.issuer})`}`).join(', ')}\n\n`);
      if (sigs.length > 0) {
        io.stdout.write(
          formatTable(
            ['kind', 'outcome', 'signer', 'issuer', 'format', 'rekor', 'signed at'],
            sigs.map((s) => [
              s.kind === 'attestation' ? `attestation${s.predicateType === null ? '' : ` ${s.predicateType.replace(/^https:\/\//, '')}`}` : 'signature',
              s.withdrawnAt === null ? s.outcome : `${s.outcome} (withdrawn)`,
              s.subject ?? '-',
              s.issuer ?? '-',
              s.format,
              s.rekorLogIndex ?? '-',
              s.signedAt.toISOString(),
            ]),
          ),
        );
      }
      return 0;
    });
  },
};

export const SIGNED_BY_USAGE = `usage: signet signed-by <subject> [--issuer <url>] [--limit N] [--json]

The images an identity signed (verified signatures only), newest first, from the ledger. The
subject is a certificate SAN (email or URI) or a key fingerprint (sha256:…). Without --issuer,
every issuer the subject signed under is listed.

Exit codes: 0 the identity is in the ledger; 2 usage; 3 no such identity.
`;

export const signedBy: Command = {
  summary: 'the images an identity signed, from the ledger',
  usage: SIGNED_BY_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { issuer: { type: 'string' }, limit: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } },
    });
    if (positionals.length !== 1) {
      throw new UsageError('name exactly one subject');
    }
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new UsageError('--limit must be an integer from 1 to 10000');
    }
    return withDb(config, log, async (db) => {
      const found = await identities.bySubject(db, positionals[0]!, values.issuer ?? null);
      if (found.length === 0) {
        io.stderr.write(`signet signed-by: no verified signature by ${positionals[0]!}${values.issuer === undefined ? '' : ` (${values.issuer})`} in the ledger\n`);
        return EXIT_NOT_FOUND;
      }
      const result = [];
      for (const identity of found) {
        const page = await images.pageSignedBy(db, identity.id, { first: limit, after: null, registry: null, repository: null });
        const byId = new Map((await images.byIds(db, page.rows.map((r) => r.id))).map((i) => [i.id, i]));
        result.push({
          subject: identity.subject,
          issuer: identity.issuer,
          kind: identity.kind,
          images: page.rows.flatMap((r) => {
            const i = byId.get(r.id);
            return i === undefined ? [] : [{ reference: `${i.registry}/${i.repository}@${i.digest}`, status: i.status, deleted: i.deletedAt !== null }];
          }),
          more: page.hasNextPage,
        });
      }
      if (values.json) {
        io.stdout.write(`${JSON.stringify({ identities: result })}\n`);
        return 0;
      }
      for (const r of result) {
        io.stdout.write(`${r.subject}${r.issuer === null ? '' : ` (${r.issuer})`}: ${r.images.length}${r.more ? '+' : ''} images\n`);
        io.stdout.write(formatTable(['image', 'status'], r.images.map((i) => [i.reference, `${i.status}${i.deleted ? ' (deleted)' : ''}`])));
        io.stdout.write('\n');
      }
      return 0;
    });
  },
};
