import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestSigstore, type TestSigstore } from '../signer/signer.ts';
import { createTestDb, type TestDb } from './db.ts';
import { freePort } from './net.ts';
import { RECOMMENDED_IGNORE, startRegistry, type RunningRegistry } from './registry.ts';
import { startTestSignet, TEST_WEBHOOK_TOKEN, type TestSignet } from './signet.ts';

/** A policy that admits what `identity` signed anywhere in the stack's registry. */
export function policyAllowing(host: string, identity: { email: string; issuer: string }, pattern = '*/*'): string {
  return `allow_with_verification:\n  "${host}":\n    "${pattern}":\n      certificate-identity: ${identity.email}\n      certificate-oidc-issuer: ${identity.issuer}\n`;
}

export interface TestStackOptions {
  /** Names the temporary folder (`signet-<name>-…`). */
  readonly name: string;
  /** The policy file's text, given the registry's host; no policy when omitted. */
  readonly policy?: (host: string) => string;
  /** More Signet settings, given the temporary folder, the registry's host and port, and the database's URL. */
  readonly env?: (stack: { tmp: string; host: string; port: number; databaseUrl: string }) => Record<string, string> | Promise<Record<string, string>>;
  /** Whether the registry notifies Signet of every push (default: yes). */
  readonly notify?: boolean;
  /** The secret the registry's notifications carry (default: `TEST_WEBHOOK_TOKEN`). */
  readonly notifyToken?: string;
}

/**
 * What most integration tests stand on: a fresh database, a test Sigstore (its trusted root
 * written to `tmp/trusted_root.json`), Signet in-process with every role, and a real
 * docker-registry on loopback that Signet may reach (insecure) and that notifies it.
 */
export interface TestStack {
  readonly db: TestDb;
  readonly sigstore: TestSigstore;
  readonly tmp: string;
  /** The registry's `127.0.0.1:<port>`. */
  readonly host: string;
  readonly signet: TestSignet;
  readonly registry: RunningRegistry;
  /** Stops the registry and Signet, drops the database and removes the temporary folder. */
  stop(): Promise<void>;
}

export async function startTestStack(opts: TestStackOptions): Promise<TestStack> {
  const [db, sigstore, tmp, port] = await Promise.all([createTestDb(), createTestSigstore(), mkdtemp(join(tmpdir(), `signet-${opts.name}-`)), freePort()]);
  const host = `127.0.0.1:${port}`;
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    SIGNET_TRUSTED_ROOT: join(tmp, 'trusted_root.json'),
    SIGNET_INSECURE_REGISTRIES: host,
  };
  await writeFile(env.SIGNET_TRUSTED_ROOT!, JSON.stringify(sigstore.trustedRoot));
  if (opts.policy !== undefined) {
    env.SIGNET_POLICY = join(tmp, 'policy.yaml');
    await writeFile(env.SIGNET_POLICY, opts.policy(host));
  }
  Object.assign(env, await opts.env?.({ tmp, host, port, databaseUrl: db.url }));
  let signet: TestSignet | undefined;
  let registry: RunningRegistry | undefined;
  const stop = async () => {
    await registry?.stop();
    await signet?.stop();
    await db.drop();
    await rm(tmp, { recursive: true, force: true });
  };
  try {
    signet = await startTestSignet(env);
    // The README's registry configuration: manifest events only (no blob events, no pulls).
    const notifications = opts.notify === false ? undefined : { url: `${signet.url}/webhooks/distribution`, token: opts.notifyToken ?? TEST_WEBHOOK_TOKEN, ignore: RECOMMENDED_IGNORE };
    registry = await startRegistry({ port, ...(notifications === undefined ? {} : { notifications }) });
  } catch (err) {
    await stop();
    throw err;
  }
  return { db, sigstore, tmp, host, signet, registry, stop };
}

/**
 * An API-only replica beside the stack's Signet: same database, policy and queue prefix; `env`
 * says which Redis (and anything else it needs).
 */
export function startApiReplica(stack: TestStack, env: Record<string, string>): Promise<TestSignet> {
  const { config } = stack.signet;
  return startTestSignet({
    DATABASE_URL: stack.db.url,
    SIGNET_ROLES: 'api',
    // A cluster's prefix is the configured one in braces.
    SIGNET_QUEUE_PREFIX: config.redis.queuePrefix.replace(/^\{(.*)\}$/, '$1'),
    ...(config.policyPath === null ? {} : { SIGNET_POLICY: config.policyPath }),
    ...env,
  });
}
