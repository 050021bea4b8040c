import { UnrecoverableError, type Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RegistryError } from '../common/errors.ts';
import { JOBS } from '../common/jobs/catalog.ts';
import { defineJob } from '../common/jobs/define-job.ts';
import { INDEX_QUEUE, IndexManifestJob, LearnImageJob, ResolveTagJob } from '../common/jobs/index-manifest.ts';
import { createLogger } from '../common/logger.ts';
import { createMetrics } from '../common/metrics.ts';
import { parseDigest } from '../common/domain/digest.ts';
import { createVerificationPool } from '../core/verification/pool.ts';
import { loadTrustedRoot } from '../core/verification/trust.ts';
import { cosignLayersFromFixture, fixturePath } from '../../test/helpers/fixtures.ts';
import { CRASH_SUBJECT } from '../../test/helpers/pool-faulty-worker.ts';
import { checkImplementations, implementJob } from './kit.ts';

const log = createLogger({ logLevel: 'silent' });
const Ping = defineJob({ name: 'ping', queue: 'test', schema: z.object({ n: z.number().int() }), jobId: (d) => `ping-${d.n}`, options: {} });
const job = (data: unknown) => ({ id: '1', name: 'ping', data, attemptsMade: 0, timestamp: Date.now() - 5, processedOn: Date.now() }) as unknown as Job;
const run = (impl: ReturnType<typeof implementJob>, data: unknown, metrics = createMetrics()) => impl.run(job(data), log, new AbortController().signal, metrics);

describe('implementJob', () => {
  it('hands the handler the parsed payload and returns its outcome', async () => {
    const impl = implementJob(Ping, { handle: ({ data }) => Promise.resolve(data.n * 2) });
    expect(await run(impl, { n: 21 })).toBe(42);
  });

  it('fails a payload its schema rejects for good, without running the handler', async () => {
    let ran = false;
    const impl = implementJob(Ping, {
      handle: () => {
        ran = true;
        return Promise.resolve(0);
      },
    });
    await expect(run(impl, { n: 'x' })).rejects.toBeInstanceOf(UnrecoverableError);
    expect(ran).toBe(false);
  });

  it.each([
    ['NOT_FOUND', true],
    ['INVALID', true],
    ['TOO_LARGE', true],
    ['REFUSED', true],
    ['UNAUTHORIZED', false],
    ['TRANSIENT', false],
  ] as const)('a registry error %s is permanent: %s', async (code, permanent) => {
    const impl = implementJob(Ping, { handle: () => Promise.reject(new RegistryError(code, 'registry said no')) });
    const err = await run(impl, { n: 1 }).catch((e: unknown) => e);
    expect(err instanceof UnrecoverableError).toBe(permanent);
    if (!permanent) {
      expect(err).toBeInstanceOf(RegistryError);
    }
  });

  it('records the duration by result, and failures as failed', async () => {
    const metrics = createMetrics();
    await run(implementJob(Ping, { handle: () => Promise.resolve('ok'), result: (r) => r }), { n: 1 }, metrics);
    await run(implementJob(Ping, { handle: () => Promise.reject(new Error('db down')) }), { n: 1 }, metrics).catch(() => undefined);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/signet_job_duration_seconds_count\{job="ping",result="ok"\} 1/);
    expect(text).toMatch(/signet_job_duration_seconds_count\{job="ping",result="failed"\} 1/);
    expect(text).toMatch(/signet_job_wait_seconds_count\{job="ping"\} 2/);
  });
});

describe('a verification thread that dies during a job', () => {
  it('fails the job for a retry, not for good, and the retry is verified by the thread that replaced it', async () => {
    const KEYLESS = parseDigest('sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee');
    const layer = cosignLayersFromFixture('cosign/connaisseur-testimage/manifests', `sha256-${KEYLESS.slice(7)}.sig.json`)[0]!;
    const root = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const pool = createVerificationPool([root], [], { size: 1, script: new URL('../../test/helpers/pool-faulty-worker.ts', import.meta.url) });
    try {
      let subject = parseDigest(CRASH_SUBJECT);
      const impl = implementJob(Ping, { handle: async () => (await pool.verifyCosignLayer(layer, subject)).outcome });
      const err = await run(impl, { n: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(UnrecoverableError);
      expect((err as Error).message).toBe('verification thread exited with code 70');
      subject = KEYLESS;
      expect(await run(impl, { n: 1 })).toBe('verified');
    } finally {
      await pool.close();
    }
  });
});

describe('checkImplementations', () => {
  const noop = { handle: () => Promise.resolve(null) };
  const index = [implementJob(IndexManifestJob, noop), implementJob(LearnImageJob, noop), implementJob(ResolveTagJob, noop)];

  it('accepts a queue whose every defined job has one handler', () => {
    expect(() => checkImplementations(INDEX_QUEUE, index, JOBS)).not.toThrow();
  });

  it('refuses a queue with a defined job left without a handler', () => {
    expect(() => checkImplementations(INDEX_QUEUE, index.slice(0, 2), JOBS)).toThrow(/no handler for resolve-tag/);
  });

  it('refuses a handler of another queue, and two handlers of one job', () => {
    expect(() => checkImplementations(INDEX_QUEUE, [...index, implementJob(Ping, noop)], JOBS)).toThrow(/ping belong to another queue/);
    expect(() => checkImplementations(INDEX_QUEUE, [...index, implementJob(ResolveTagJob, noop)], JOBS)).toThrow(/two handlers/);
  });
});
