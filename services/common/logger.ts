import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
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

/**
 * Where a process's logs go: on a terminal, pino-pretty's readable, coloured lines (a person is
 * watching); anywhere else (a container's log collector, a file, a pipe) undefined, which is
 * NDJSON on stdout for machines. Redaction happens before either.
 */
export function logDestination(out: NodeJS.WritableStream & { readonly isTTY?: boolean }): DestinationStream | undefined {
  if (out.isTTY !== true) {
    return undefined;
  }
  return pretty({ destination: out, colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' });
}
