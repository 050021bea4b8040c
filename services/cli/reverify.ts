import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import type { Config } from '../common/config.ts';
import { openDb } from '../common/db/client.ts';
import { ledgerStream } from '../common/events.ts';
import { migrateToLatest } from '../common/db/migrate.ts';
import { ALERTS_QUEUE } from '../common/jobs/notify-ownership-change.ts';
import type { Logger } from '../common/logger.ts';
import { loadPolicy } from '../common/policy/load.ts';
import { createRedis } from '../common/redis.ts';
import { createDecider } from '../core/decider.ts';
import { createOwnershipAnnouncer } from '../core/ownership.ts';
import { reverifyLedger, type ReverifyProgress } from '../core/reverify.ts';
import { createVerifierFromConfig } from '../core/verification/from-config.ts';
import { createProgressLine } from './progress.ts';
import { UsageError, type Command, type CommandIo } from './command.ts';

export const REVERIFY_USAGE = `usage: signet reverify [--dry-run] [--only-untrusted-keys] [--json]

Verifies every signature and attestation stored in the ledger again, from the stored material,
against the trusted roots and keys configured now (SIGNET_TRUSTED_ROOT, SIGNET_TRUSTED_KEYS and the
keys SIGNET_POLICY names). No registry, Rekor or TUF call is made. Signatures whose outcome or
trust root changed are rewritten and their images decided again; the API replicas hear of it.

Run it after rotating or adding a trusted root or key, or to check a new root before rolling it out
(--dry-run).

  --dry-run               report what would change; write nothing
  --only-untrusted-keys   only key-based signatures no trusted key verified (what a new key can change)
  --json                  one JSON object on stdout instead of the table

Exit codes: 0 done (or, with --dry-run, nothing would change); 1 failed; 2 usage or configuration;
3 with --dry-run, something would change.
`;

export const reverify: Command = {
  summary: 're-verify the stored signatures against the current trusted roots and keys (no registry calls)',
  usage: REVERIFY_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        'dry-run': { type: 'boolean', default: false },
        'only-untrusted-keys': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    }
    const dryRun = values['dry-run'];
    const { policy, source } = await loadPolicy(config.policyPath);
    const verifier = await createVerifierFromConfig(config, policy);
    const db = openDb(config.database, log);
    const redis = createRedis(config.redis, 'producer', log);
    const alerts = config.alerts.webhookUrl === null ? null : new Queue(ALERTS_QUEUE, { connection: redis, prefix: config.redis.queuePrefix });
    try {
      await migrateToLatest(db);
      if (redis.status !== 'ready') {
        await once(redis, 'ready');
      }
      const ownership = createOwnershipAnnouncer({ db, redis, stream: ledgerStream(config.redis), alerts, log });
      const started = performance.now();
      const progress = createProgressLine(io.stderr);
      const onProgress = (p: ReverifyProgress) => progress.update(`reverify: ${p.checked} checked, ${p.changed} changed`, p.checked, null);
      const result = await reverifyLedger(db, verifier, ownership, { onlyUntrustedKeys: values['only-untrusted-keys'], dryRun, onProgress });
      progress.done();
      let redecided = 0;
      if (!dryRun && result.manifestIds.length > 0) {
        const decider = createDecider({ db, redis, stream: ledgerStream(config.redis), policy, policySource: source, log });
        redecided = await decider.decideManifests(result.manifestIds);
      }
      const seconds = (performance.now() - started) / 1000;
      if (values.json) {
        io.stdout.write(
          `${JSON.stringify({
            dryRun,
            checked: result.checked,
            changed: result.changed,
            transitions: result.transitions,
            imagesRedecided: redecided,
            trustRoots: verifier.roots.map((r) => ({ path: r.path, version: r.version })),
            seconds: Number(seconds.toFixed(3)),
          })}\n`,
        );
      } else {
        const rows = Object.entries(result.transitions).sort(([a], [b]) => a.localeCompare(b));
        const width = Math.max(10, ...rows.map(([t]) => t.length));
        io.stdout.write(
          [
            `${dryRun ? 'would re-verify' : 're-verified'} ${result.checked} signatures in ${seconds.toFixed(1)} s against ${verifier.roots.length} trusted root(s) and ${verifier.keyCount} key(s): ${result.changed} ${dryRun ? 'would change' : 'changed'}${dryRun ? '' : `, ${redecided} images decided again`}`,
            ...(rows.length === 0 ? [] : ['', `${'transition'.padEnd(width)}  count`, ...rows.map(([t, n]) => `${t.padEnd(width)}  ${n}`)]),
            '',
          ].join('\n'),
        );
      }
      return dryRun && result.changed > 0 ? 3 : 0;
    } finally {
      await alerts?.close().catch(() => undefined);
      await redis.quit().catch(() => undefined);
      await db.destroy();
    }
  },
};
