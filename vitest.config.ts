import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs nothing running (no Postgres, Redis or registry:
// `npx vitest run --project unit`); `integration` runs against the real services that
// scripts/test-services.sh starts, from a template database global-setup migrates once;
// `distributed` (test/distributed/) starts its own Redis Cluster, Sentinel and Postgres replica
// on loopback beside them (`npm run test:distributed`). `npm test` runs all three.
const NEEDS_SERVICES = ['test/integration/**/*.test.ts', 'test/security/**/*.test.ts', 'test/fuzz/ledger-writes.test.ts', 'test/helpers/**/*.test.ts', 'services/core/oci/client.test.ts'];

/**
 * BullMQ's connection set-up (`RedisConnection.init`, whose promise its `client` getter hands out)
 * rejects with ioredis's "Stream isn't writeable…" or "Connection is closed." when a test stops
 * Redis or an in-process Signet while a queue is still connecting; nothing awaits that promise, so
 * it surfaces as an unhandled rejection after every test passed (bullmq 5, decisions.test.ts
 * mostly). Only those two ioredis messages raised from ioredis's own code are ignored; any other
 * unhandled error still fails the run.
 */
const BULLMQ_TEARDOWN = new Set(["Stream isn't writeable and enableOfflineQueue options is false", 'Connection is closed.']);

export default defineConfig({
  test: {
    onUnhandledError: (error) => !(BULLMQ_TEARDOWN.has(error.message ?? '') && (error.stack ?? '').includes('node_modules/ioredis/')),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.test-artifacts/vitest.json' }]] : ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['services/**/*.test.ts', 'test/**/*.test.ts'], exclude: [...NEEDS_SERVICES, 'test/distributed/**'] },
      },
      {
        extends: true,
        test: { name: 'integration', include: NEEDS_SERVICES, globalSetup: ['test/global-setup.ts'] },
      },
      {
        extends: true,
        // They start servers of their own and fail a master over: more time on a loaded machine.
        test: { name: 'distributed', include: ['test/distributed/**/*.test.ts'], globalSetup: ['test/global-setup.ts'], testTimeout: 180_000, hookTimeout: 180_000 },
      },
    ],
  },
});
