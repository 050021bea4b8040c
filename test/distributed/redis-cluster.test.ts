// Redis Cluster: three masters started here (Debian's redis-server, `redis-cli --cluster create`).
// Signet runs every role on the cluster (REDIS_CLUSTER_NODES) beside an API-only replica on the
// same cluster. A push to a real docker-registry goes through the BullMQ queues (hash-tagged
// prefix, so each queue's keys share a slot) to a decision, which reaches the replica over the
// decision feed's stream on the cluster.
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answered, feedCounters } from '../helpers/decisions.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-servers.ts';
import { eventually, type TestSignet } from '../helpers/signet.ts';
import { policyAllowing, startApiReplica, startTestStack, type TestStack } from '../helpers/stack.ts';

let cluster: RedisCluster;
let stack: TestStack;
let replica: TestSignet;

beforeAll(async () => {
  cluster = await startRedisCluster();
  const env = { REDIS_CLUSTER_NODES: cluster.nodes.join(',') };
  stack = await startTestStack({ name: 'redis-cluster', policy: (host) => policyAllowing(host, { email: 'alice@example.com', issuer: 'https://accounts.example.com' }), env: () => env });
  replica = await startApiReplica(stack, env);
});

afterAll(async () => {
  await replica?.stop();
  await stack?.stop();
  await cluster?.stop();
});

describe('on a Redis Cluster of three masters', () => {
  it('queues, indexes and decides a push, and the decision reaches an API replica over the feed', async () => {
    const prefix = stack.signet.config.redis.queuePrefix;
    expect(prefix).toMatch(/^\{signet-test-[0-9a-f]+\}$/);
    const image = await pushRandomImage(stack.registry.url, 'team/app', 'v1');
    const ref = `${stack.host}/team/app:v1`;
    expect(await answered(stack.signet, ref, { reason: 'unsigned' })).toMatchObject({ allowed: false, digest: image.digest });
    expect(await answered(replica, `${stack.host}/team/app@${image.digest}`, { reason: 'unsigned' })).toMatchObject({ allowed: false });
    // The replica heard it over the stream (not only from Postgres on a miss).
    await eventually(async () => ((await feedCounters(replica)).applied > 0 ? true : undefined), 'events applied by the replica');
    expect((await feedCounters(replica)).reload).toBe(0);

    // Every key of Signet's lives in the prefix's one slot, and the cluster spreads nothing else.
    const client = new Cluster(
      cluster.nodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })),
      { lazyConnect: true },
    );
    try {
      await client.connect();
      const keys = (await Promise.all(client.nodes('master').map((node) => node.keys(`${prefix}:*`)))).flat();
      expect(keys).toContain(`${prefix}:ledger-events`);
      expect(keys.some((k) => k.startsWith(`${prefix}:index:`))).toBe(true);
      const slots = new Set(await Promise.all(keys.map((k) => client.cluster('KEYSLOT', k))));
      expect(slots.size).toBe(1);
    } finally {
      client.disconnect();
    }
  });
});
