import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';

/**
 * A job contract shared by the producer (ingest) and the consumer (worker). Both sides parse the
 * payload with `schema`: payloads outlive deploys.
 */
export interface JobDefinition<S extends z.ZodType> {
  readonly name: string;
  readonly queue: string;
  readonly schema: S;
  /** Deterministic id from immutable inputs, so in-flight duplicates collapse. Must not contain ':'. */
  readonly jobId: (data: z.infer<S>) => string;
  readonly options: JobsOptions;
}

export function defineJob<S extends z.ZodType>(def: JobDefinition<S>): JobDefinition<S> {
  return def;
}
