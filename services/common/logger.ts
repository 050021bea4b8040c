import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** The root logger: NDJSON on stdout, secrets redacted. Children carry `role`, `job.id`, `req.id`. */
export function createLogger(config: Pick<Config, 'logLevel'>, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = {
    level: config.logLevel,
    base: { service: 'signet', ...bindings },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token', 'authorization'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
