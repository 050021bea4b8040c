// PgBouncer in transaction pooling mode (Debian's package) between every role and Postgres:
// start-up (database check, migrations under a transaction-level advisory lock), webhook intake,
// indexing and decisions all work through it — a push to a real docker-registry ends decided.
// Debian's PgBouncer is 1.18: a named prepared statement stays on the server connection that
// parsed it, which the next transaction may not get, so Signet runs with
// SIGNET_PREPARED_STATEMENTS=off here, as the README tells.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answered } from '../helpers/decisions.ts';
import { pushRandomImage } from '../helpers/oci-push.ts';
import { startPgBouncer, type Bouncer } from '../helpers/pgbouncer.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';

let bouncer: Bouncer;
let stack: TestStack;
let database: string;

beforeAll(async () => {
  bouncer = await startPgBouncer();
  stack = await startTestStack({
    name: 'pgbouncer',
    policy: (host) => policyAllowing(host, { email: 'alice@example.com', issuer: 'https://accounts.example.com' }),
    env: ({ databaseUrl }) => {
      database = new URL(databaseUrl).pathname.slice(1);
      return { DATABASE_URL: `${bouncer.url}/${database}`, SIGNET_PREPARED_STATEMENTS: 'off' };
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await bouncer?.stop();
});

describe('through PgBouncer in transaction mode', () => {
  it('indexes and decides a push, every query pooled per transaction', async () => {
    const before = await bouncer.transactions(database);
    const image = await pushRandomImage(stack.registry.url, 'team/app', 'v1');
    expect(await answered(stack.signet, `${stack.host}/team/app:v1`, { reason: 'unsigned' })).toMatchObject({ allowed: false, digest: image.digest });
    expect(await bouncer.transactions(database)).toBeGreaterThan(before);
  });
});
