// Redis Sentinel: a master, a replica and a sentinel started here. Signet (every role) and an
// API-only replica find the master through the sentinel; ingest waits for the replica to hold each
// delivery's jobs before answering 202 (SIGNET_REDIS_WAIT_REPLICAS=1). During a burst of pushes to
// a real docker-registry the sentinel fails the master over: every push still ends decided (what
// was answered 503 meanwhile the registry redelivers), and the replica keeps answering throughout.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INDEX_QUEUE } from '../../services/common/jobs/index-manifest.ts';
import { answered, ask, feedCounters } from '../helpers/decisions.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRedisSentinel, type RedisSentinel } from '../helpers/redis-servers.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startApiReplica, startTestStack, type TestStack } from '../helpers/stack.ts';

let sentinel: RedisSentinel;
let stack: TestStack;
let replica: TestSignet;

beforeAll(async () => {
  sentinel = await startRedisSentinel();
  const env = { REDIS_SENTINELS: sentinel.sentinel, REDIS_SENTINEL_NAME: sentinel.name, SIGNET_REDIS_WAIT_REPLICAS: '1' };
  stack = await startTestStack({ name: 'redis-sentinel', policy: (host) => policyAllowing(host, { email: 'alice@example.com', issuer: 'https://accounts.example.com' }), env: () => env });
  replica = await startApiReplica(stack, env);
});

afterAll(async () => {
  await replica?.stop();
  await stack?.stop();
  await sentinel?.stop();
});

const PUSHES = 8;

const sentinelNode = () => ({ host: '127.0.0.1', port: Number(sentinel.sentinel.split(':')[1]) });

describe('behind Redis Sentinel', () => {
  it('loses no acknowledged push across a failover during a burst, and keeps serving decisions', async () => {
    const first = await pushRandomImage(stack.registry.url, 'team/app', 'v0');
    const firstRef = `${stack.host}/team/app@${first.digest}`;
    await answered(replica, firstRef, { reason: 'unsigned' });
    const masterBefore = await sentinel.master();

    // Ask the replica all along: every answer is the decision it holds, never an error.
    let asking = true;
    const answers: string[] = [];
    const asker = (async () => {
      while (asking) {
        const a = await ask(replica, firstRef);
        answers.push(`${a.allowed}/${a.reason}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const pushed = [];
    for (let i = 0; i < PUSHES; i++) {
      pushed.push(await pushRandomImage(stack.registry.url, 'team/app', `v${i + 1}`));
      if (i === 2) {
        expect(await sentinel.failover()).not.toBe(masterBefore);
      }
    }
    for (const image of pushed) {
      await answered(replica, `${stack.host}/team/app@${image.digest}`, { reason: 'unsigned' }, 60_000);
    }
    asking = false;
    await asker;
    expect(new Set(answers)).toEqual(new Set(['false/unsigned']));
    // Every job of every delivery Signet answered 202 ran to completion on the new master.
    const jobIds = (await stack.db.db.selectFrom('webhook_deliveries').select('job_ids').execute()).flatMap((r) => r.job_ids);
    expect(jobIds.length).toBeGreaterThanOrEqual(PUSHES);
    const queue = new Queue(INDEX_QUEUE, { connection: { sentinels: [sentinelNode()], name: sentinel.name }, prefix: stack.signet.config.redis.queuePrefix });
    try {
      // A redelivered webhook's jobs may still be running: each must end completed, none lost ('unknown').
      const pending = async () => (await Promise.all(jobIds.map((id) => queue.getJobState(id)))).filter((s) => s !== 'completed');
      await eventually(async () => ((await pending()).length === 0 ? true : undefined), 'every acknowledged job completed', 60_000).catch(async (err: unknown) => {
        expect(await pending()).toEqual([]);
        throw err;
      });
    } finally {
      await queue.close();
    }
    expect((await feedCounters(replica)).applied).toBeGreaterThan(0);
  });
});
