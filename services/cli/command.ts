import type { Config } from '../common/config.ts';
import { ImageReferenceError, parseImageReference, type ImageReference } from '../common/domain/image-ref.ts';
import type { Logger } from '../common/logger.ts';

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** The conventional exit code of a command stopped by `signal` (128 + its number). */
export const SIGNAL_EXIT_CODES: Readonly<Record<InterruptSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** What a subcommand may touch of the process: main.ts owns the real one. */
export interface CommandIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown; readonly isTTY?: boolean; readonly columns?: number };
  /** Calls `handler` on SIGINT/SIGTERM, with the signal's name. */
  onInterrupt(handler: (signal: InterruptSignal) => void): void;
  exit(code: number): never;
}

/** A `signet <name>` subcommand. Resolves to the exit code. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number>;
}

/** Wrong arguments: the message and the command's usage are printed, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The one image reference a command takes, parsed; a bad or missing one is a {@link UsageError}. */
export function imageReferenceArgument(positionals: readonly string[]): ImageReference {
  if (positionals.length !== 1) {
    throw new UsageError('name exactly one image reference');
  }
  try {
    return parseImageReference(positionals[0]!);
  } catch (err) {
    if (err instanceof ImageReferenceError) {
      throw new UsageError(err.message);
    }
    throw err;
  }
}
