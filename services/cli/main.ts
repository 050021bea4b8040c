#!/usr/bin/env node
// `signet <command>`: operator commands beside the server (services/main.ts). Each command is a
// module exporting a Command; this dispatcher reads the configuration once and maps errors to
// exit codes (2 usage or configuration, 1 failure).
import { packageVersion } from '../common/build-info.ts';
import { ConfigError, loadConfig } from '../common/config.ts';
import { createLogger, logDestination } from '../common/logger.ts';
import { PolicyConfigError } from '../common/policy/policy.ts';
import { TrustConfigError } from '../core/verification/trust.ts';
import { backfill } from './backfill.ts';
import { reverify } from './reverify.ts';
import { signedBy, whoOwns } from './ledger-commands.ts';
import { policy } from './policy.ts';
import { auditCommand, explainCommand } from './rollout-commands.ts';
import { verify } from './verify.ts';
import { UsageError, type Command, type CommandIo } from './command.ts';

const COMMANDS: Readonly<Record<string, Command>> = {
  backfill,
  reverify,
  'who-owns': whoOwns,
  'signed-by': signedBy,
  policy,
  verify,
  explain: explainCommand,
  audit: auditCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return `usage: signet <command> [options]\n\ncommands:\n${Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n')}\n  ${'version'.padEnd(width)}  print Signet's version\n\nEvery command takes --json (one JSON object on stdout) and --help: signet <command> --help shows a command's options. Configuration is read from the environment, as for the server.\n`;
}

const io: CommandIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  onInterrupt: (handler) => {
    process.on('SIGINT', () => handler('SIGINT'));
    process.on('SIGTERM', () => handler('SIGTERM'));
  },
  exit: (code) => process.exit(code),
};

const VERSION_USAGE = `usage: signet version [--json]

Signet's version, the Node version and the platform; with --json, one object
{"version", "node", "platform"}. Exit code 0.
`;

/** `signet 0.1.0 (node v24.x, linux/x64)`: the version of the package this CLI belongs to. */
function version(json: boolean): string {
  const platform = `${process.platform}/${process.arch}`;
  return json ? `${JSON.stringify({ version: packageVersion(), node: process.version, platform })}\n` : `signet ${packageVersion()} (node ${process.version}, ${platform})\n`;
}

const [name, ...args] = process.argv.slice(2);
const command = name === undefined ? undefined : COMMANDS[name];
if (command === undefined) {
  // Asked for, help goes to stdout and exits 0 (so `signet --help | less` works); a mistake gets it on stderr, exit 2.
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    process.exit(0);
  }
  if (name === 'version' || name === '--version') {
    process.stdout.write(args.includes('--help') || args.includes('-h') ? VERSION_USAGE : version(args.includes('--json')));
    process.exit(0);
  }
  process.stderr.write(name === undefined ? usage() : `signet: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
  process.exit(2);
}
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(command.usage);
  process.exit(0);
}
try {
  const config = loadConfig(process.env);
  // Logs are NDJSON on stdout (readable lines on a terminal), as the server's; the report is plain text.
  const log = createLogger(config, { role: `cli-${name}` }, logDestination(process.stdout));
  process.exitCode = await command.run(args, io, config, log);
} catch (err) {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
    process.stderr.write(`signet ${name}: ${(err as Error).message}\n\n${command.usage}`);
    process.exit(2);
  }
  if (err instanceof ConfigError || err instanceof TrustConfigError || err instanceof PolicyConfigError) {
    process.stderr.write(`signet: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`signet ${name}: ${(err as Error).message}\n`);
  process.exit(1);
}
