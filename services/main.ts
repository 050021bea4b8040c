// Signet's composition root: reads the configuration once, starts the roles this process runs
// (SIGNET_ROLES, default all three) and shuts them down in order on SIGTERM/SIGINT.
import { startSignet } from './app.ts';
import { ConfigError, loadConfig, type Config } from './common/config.ts';
import { createLogger } from './common/logger.ts';
import { registerShutdown } from './common/shutdown.ts';

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
const log = createLogger(config, { role: config.roles.join('+') });
try {
  const signet = await startSignet(config, log);
  registerShutdown(log, signet.shutdownSteps, config.shutdownTimeoutMs, (code) => process.exit(code));
  process.on('SIGHUP', () => void signet.reloadPolicy());
} catch (err) {
  log.fatal({ err }, 'signet failed to start');
  process.exit(1);
}
