// Signet's composition root: reads the configuration once, starts the roles this process runs
// (SIGNET_ROLES, default all three) and shuts them down in order on SIGTERM/SIGINT.
import { startSignet } from './app.ts';
import { ConfigError, loadConfig, type Config } from './common/config.ts';
import { createLogger, logDestination } from './common/logger.ts';
import { PolicyConfigError } from './common/policy/policy.ts';
import { registerShutdown } from './common/shutdown.ts';
import { TrustConfigError } from './core/verification/trust.ts';

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`signet: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
const log = createLogger(config, { role: config.roles.join('+') }, logDestination(process.stdout));
try {
  const signet = await startSignet(config, log);
  registerShutdown(log, signet.shutdownSteps, config.shutdownTimeoutMs, (code) => process.exit(code));
  process.on('SIGHUP', () => void signet.reloadPolicy());
} catch (err) {
  // A policy or trust file that cannot be used is configuration, like a bad variable: said plainly
  // (the policy with file:line:column), exit 2. Anything else is a failure to start, exit 1.
  if (err instanceof PolicyConfigError || err instanceof TrustConfigError) {
    log.fatal({ err: { type: err.name, message: err.message } }, 'signet cannot start with this configuration');
    process.stderr.write(`signet: ${err.message}\n`);
    process.exit(2);
  }
  log.fatal({ err }, 'signet failed to start');
  process.exit(1);
}
