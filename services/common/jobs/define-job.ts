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
 * A scheduled pass (a retention prune, the reconciliation): its name is its id, so one runs or
 * waits at a time; it is tried once (a failed pass is simply the next one's work); the last 50
 * completed and failed are kept to look at.
 */
export function definePassJob<S extends z.ZodType>(name: string, queue: string, schema: S): JobDefinition<S> {
  return defineJob({ name, queue, schema, jobId: () => name, options: { attempts: 1, removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } } });
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

/** A job to add: its contract and payload. */
export interface JobToAdd {
  readonly def: JobDefinition<z.ZodType>;
  readonly data: unknown;
}

/**
 * {@link addJob} for several jobs in one Redis round trip (one pipeline of BullMQ's add script);
 * resolves to their ids in order. Each is parsed and deduplicated by its id as `addJob` does (the
 * add script refuses nothing it already holds). Rejects if any add failed: those before it may be
 * queued, which adding them again does not change.
 */
export async function addJobs(queue: Queue, jobs: readonly JobToAdd[]): Promise<string[]> {
  if (jobs.length === 1) {
    // One job: no pipeline to build (ioredis builds each with every script command on it).
    return [await addJob(queue, jobs[0]!.def, jobs[0]!.data)];
  }
  const prepared = jobs.map(({ def, data }) => {
    const parsed: unknown = def.schema.parse(data);
    return { name: def.name, data: parsed, opts: { ...def.options, jobId: def.jobId(parsed) } };
  });
  const added = await queue.addBulk(prepared);
  return added.map((job, i) => job.id ?? prepared[i]!.opts.jobId);
}
