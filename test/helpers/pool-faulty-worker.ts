// A verification pool thread (services/core/verification/pool-worker.ts) that dies or hangs when
// asked to verify for one of the subjects below, and otherwise is the real thread: the pool's tests
// use it to show what a crashed or stuck thread does to the requests it holds.
import { isMainThread, parentPort } from 'node:worker_threads';

export const CRASH_SUBJECT = 'sha256:dead000000000000000000000000000000000000000000000000000000000000';
export const HANG_SUBJECT = 'sha256:5106000000000000000000000000000000000000000000000000000000000000';

parentPort?.on('message', (m: { args?: readonly unknown[] }) => {
  const subject = m.args?.[1];
  if (subject === CRASH_SUBJECT) {
    process.exit(70);
  }
  if (subject === HANG_SUBJECT) {
    for (;;) {
      // stuck
    }
  }
});
if (!isMainThread) {
  // Imported by the tests for the subjects above; only a thread runs the real one.
  await import('../../services/core/verification/pool-worker.ts');
}
