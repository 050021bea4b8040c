import type { JobsOptions, Queue } from 'bullmq';
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

/**
 * Parses `data` with the job's schema (the producer side of "parse on both ends") and adds it under
 * its deterministic id, to run after `delayMs` when given; resolves to the id. add(), not addBulk(): BullMQ dedupes by jobId on add.
 */
export async function addJob<S extends z.ZodType>(queue: Queue, def: JobDefinition<S>, data: z.input<S>, delayMs?: number): Promise<string> {
  const parsed = def.schema.parse(data);
  const jobId = def.jobId(parsed);
  const job = await queue.add(def.name, parsed, { ...def.options, jobId, ...(delayMs === undefined ? {} : { delay: Math.max(0, delayMs) }) });
  return job.id ?? jobId;
}
