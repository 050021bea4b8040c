import { readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { WEBHOOK_SOURCES, type WebhookSource } from './domain/registry-event.ts';
import { HOST_PATTERN } from './domain/host-allowlist.ts';
import { loadRegistriesFile, RegistriesFileError, type RegistryConfig } from './registries-file.ts';

/** The Sigstore trusted roots shipped with Signet, public-good first, then GitHub's (see trust/PROVENANCE.md). */
export const DEFAULT_TRUSTED_ROOTS = [
  fileURLToPath(new URL('../../trust/public-good/trusted_root.json', import.meta.url)),
  fileURLToPath(new URL('../../trust/github/trusted_root.json', import.meta.url)),
];

export const ROLES = ['ingest', 'worker', 'api'] as const;

/**
 * Bounds of one crawl (a `signet backfill` or one scheduled reconciliation pass), so that a registry
 * whose listings never end (a `Link: rel="next"` on every page) cannot keep it running forever.
 * Each is far above what real registries list (see README, "Reconciliation"): they end a runaway
 * listing, they do not pace an honest one.
 */
export interface CrawlLimits {
  /** Pages of any one listing: the catalog, a repository's tag list, one digest's referrers. */
  readonly listPages: number;
  /** Entries of any one listing: repositories, a repository's tags, one digest's referrers. */
  readonly listEntries: number;
  /** List pages of a whole crawl: catalog, tag lists and referrers together. */
  readonly passPages: number;
  /** Entries of a whole crawl: repositories, tags and referrers together. */
  readonly passEntries: number;
}

export const DEFAULT_CRAWL_LIMITS: CrawlLimits = {
  listPages: 10_000,
  listEntries: 1_000_000,
  passPages: 10_000_000,
  passEntries: 10_000_000,
};
export type Role = (typeof ROLES)[number];

const hostPort = z
  .string()
  .regex(/^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:]+\](:\d{1,5})?$/i, 'expected host or host:port');

const commaList = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
    )
    .pipe(z.array(item));

/**
 * Verification threads by default on `cores` cores: one per core but one — the worker's own thread
 * keeps a core for its registry fetches, Postgres writes and job locks — and at most 4, since each
 * thread holds a verifier of its own (about 65 MiB); none on a single core, where a thread would
 * only add a hop.
 */
export function defaultVerifyThreads(cores: number): number {
  return Math.min(4, Math.max(0, cores - 1));
}

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `15m`, `30s`, `1h`, `30d`, `500ms` or bare milliseconds → milliseconds; `0` means off. */
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s, ctx) => {
      const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(s.trim());
      if (m === null) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration such as 15m, 30s, 1h, 30d or 0 (off)' });
        return z.NEVER;
      }
      return Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS];
    });

const webhookSecret = z.string().min(16, 'must be at least 16 characters').optional();
const WebhookSecretEnv = z.object(
  Object.fromEntries(WEBHOOK_SOURCES.map((s) => [`SIGNET_WEBHOOK_SECRET_${s.toUpperCase()}`, webhookSecret])) as Record<`SIGNET_WEBHOOK_SECRET_${Uppercase<WebhookSource>}`, typeof webhookSecret>,
);

/**
 * Every environment variable Signet reads. This is the only module that touches `process.env`.
 * Names in the issue's configuration contract are fixed; the rest are Signet's own.
 */
const Env = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default('postgres://postgres@127.0.0.1:5432/signet'),
  DATABASE_READ_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  SIGNET_PREPARED_STATEMENTS: z.enum(['on', 'off']).default('on'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER_NODES: commaList(hostPort),
  REDIS_SENTINELS: commaList(hostPort),
  REDIS_SENTINEL_NAME: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ and - only').default('mymaster'),
  SIGNET_REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).max(16).default(0),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  SIGNET_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  SIGNET_REVISION: z.string().min(1).max(64).default('unknown'),
  SIGNET_ROLES: commaList(z.enum(ROLES)).transform((r) => (r.length === 0 ? [...ROLES] : r)),
  SIGNET_WEBHOOK_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  SIGNET_TRUSTED_ROOT: z.string().min(1).default(DEFAULT_TRUSTED_ROOTS.join(',')),
  SIGNET_TRUSTED_KEYS: z.string().min(1).optional(),
  SIGNET_POLICY: z.string().min(1).optional(),
  SIGNET_LEARN_REGISTRIES: commaList(hostPort),
  SIGNET_ALLOWED_REGISTRIES: commaList(z.string().regex(HOST_PATTERN, 'expected host[:port] or *.domain')),
  SIGNET_ALLOWED_REDIRECT_HOSTS: commaList(z.string().regex(HOST_PATTERN, 'expected host[:port] or *.domain')),
  SIGNET_UNKNOWN_IMAGES: z.enum(['deny', 'allow']).default('deny'),
  SIGNET_DECISION_WAIT_MS: z.coerce.number().int().min(0).max(10_000).default(0),
  // ~180 bytes per decision and up to ~200 per tag (BENCHMARKS.md, section 1): the default fits a 1 GiB pod with room to spare.
  SIGNET_DECISION_TABLE_MAX: z.coerce.number().int().min(1_000).max(100_000_000).default(2_000_000),
  SIGNET_TLS_CERT: z.string().min(1).optional(),
  SIGNET_TLS_KEY: z.string().min(1).optional(),
  SIGNET_TLS_CLIENT_CA: z.string().min(1).optional(),
  SIGNET_INSECURE_REGISTRIES: commaList(hostPort),
  SIGNET_REGISTRY_AUTH_FILE: z.string().min(1).optional(),
  SIGNET_REGISTRY_ENDPOINTS: commaList(
    z.string().regex(/^[a-z0-9.:[\]-]+=https?:\/\/[^/?#\s]+\/?$/i, 'expected name=http(s)://host[:port]'),
  ),
  SIGNET_REGISTRIES_FILE: z.string().min(1).optional(),
  SIGNET_RECONCILE_INTERVAL: duration('15m'),
  SIGNET_CRAWL_MAX_LIST_PAGES: positiveInt(DEFAULT_CRAWL_LIMITS.listPages),
  SIGNET_CRAWL_MAX_LIST_ENTRIES: positiveInt(DEFAULT_CRAWL_LIMITS.listEntries),
  SIGNET_CRAWL_MAX_PASS_PAGES: positiveInt(DEFAULT_CRAWL_LIMITS.passPages),
  SIGNET_CRAWL_MAX_PASS_ENTRIES: positiveInt(DEFAULT_CRAWL_LIMITS.passEntries),
  SIGNET_TUF_REFRESH: duration('24h'),
  // Ten years at most: the cutoff is computed as a timestamp, and 0 already keeps everything.
  SIGNET_DELIVERY_RETENTION: duration('30d').pipe(z.number().max(3650 * UNIT_MS.d, 'at most 3650d (0 keeps deliveries forever)')),
  SIGNET_ADMISSION_RECORD: z.enum(['on', 'off']).default('on'),
  SIGNET_ADMISSION_RECORD_BUFFER: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  SIGNET_ADMISSION_RETENTION: duration('30d').pipe(z.number().max(3650 * UNIT_MS.d, 'at most 3650d (0 keeps admission records forever)')),
  SIGNET_POLICY_VERSION_RETENTION: duration('7d').pipe(z.number().max(3650 * UNIT_MS.d, 'at most 3650d (0 keeps every policy version\'s decisions forever)')),
  SIGNET_TUF_MIRROR: z.url({ protocol: /^https?$/ }).default('https://tuf-repo-cdn.sigstore.dev'),
  SIGNET_TUF_ROOT: z.string().min(1).optional(),
  SIGNET_TUF_CACHE: z.string().min(1).default(join(tmpdir(), 'signet-tuf')),
  SIGNET_QUEUE_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9_-]+$/, 'letters, digits, _ and - only')
    .default('signet'),
  // Ledger events kept in the decision feed's stream: how far an API replica may fall behind (or stay
  // away) and still resume without a full reload. ~300 bytes of Redis memory each.
  SIGNET_DECISION_FEED_LENGTH: z.coerce.number().int().min(100).max(100_000_000).default(100_000),
  SIGNET_WORKER_CONCURRENCY: positiveInt(16),
  // Default: defaultVerifyThreads(the cores this process may use).
  SIGNET_VERIFY_THREADS: z.coerce.number().int().min(0).max(256).optional(),
  SIGNET_WORKER_LOCK_MS: z.coerce.number().int().min(1_000).max(600_000).default(60_000),
  SIGNET_REGISTRY_TIMEOUT_MS: positiveInt(15_000),
  SIGNET_REGISTRY_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
  SIGNET_REGISTRY_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  SIGNET_MAX_MANIFEST_BYTES: positiveInt(4 * 1024 * 1024),
  SIGNET_MAX_PAYLOAD_BYTES: positiveInt(256 * 1024),
  // distribution's push notification lists every descriptor of the manifest, so it grows with the
  // manifest (up to the registry's own 4 MiB cap), and any non-2xx is retried forever, holding up
  // every later notification: the limit must stay above what a registry can send.
  SIGNET_MAX_WEBHOOK_BYTES: positiveInt(8 * 1024 * 1024),
  // A source that signs its bodies (github) is only authenticated once the whole body is read, so
  // what a stranger can make a process hold is this limit times SIGNET_MAX_UNVERIFIED_WEBHOOKS.
  // GitHub's package events are about 20 KiB.
  SIGNET_MAX_SIGNED_WEBHOOK_BYTES: positiveInt(1024 * 1024),
  SIGNET_MAX_UNVERIFIED_WEBHOOKS: z.coerce.number().int().min(1).max(1024).default(16),
  SIGNET_HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  SIGNET_HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).optional(),
  SIGNET_SHUTDOWN_TIMEOUT_MS: positiveInt(25_000),
  SIGNET_API_TOKENS: commaList(z.string().min(16, 'each token must be at least 16 characters')),
  SIGNET_ALERT_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).extend(WebhookSecretEnv.shape);

export interface Config {
  readonly roles: readonly Role[];
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly maxWebhookBytes: number;
    /** Body limit of the sources that sign their bodies (checked only once the body is read). */
    readonly maxSignedWebhookBytes: number;
    /** Bodies of signing sources one process reads at once before their signature is checked; more are answered 503. */
    readonly maxUnverifiedWebhooks: number;
    /** A whole request (headers and body) must arrive within `requestMs`, its headers within `headersMs` (≤ `requestMs`). */
    readonly timeouts: { readonly requestMs: number; readonly headersMs: number };
    /** HTTPS (TLS 1.3 minimum, as Gatekeeper requires of providers) when set; optional client-certificate check. */
    readonly tls: { readonly certPath: string; readonly keyPath: string; readonly clientCaPath: string | null } | null;
    /** A second, plain-HTTP listener serving only `/metrics` (for scrapers when the main port is HTTPS); null: none. */
    readonly metricsPort: number | null;
  };
  /** The source revision `signet_build_info` reports (SIGNET_REVISION, set when the image is built). */
  readonly revision: string;
  /**
   * `readUrl`: a streaming replica for GraphQL and decision misses (DATABASE_READ_URL), or null.
   * `prepare`: statements run repeatedly are sent as named prepared statements
   * (SIGNET_PREPARED_STATEMENTS; off for PgBouncer before 1.21 in transaction mode).
   */
  readonly database: { readonly url: string; readonly readUrl: string | null; readonly prepare: boolean };
  readonly redis: RedisConfig;
  /** `null` when no token is configured: webhooks are then refused (never accepted unauthenticated). */
  readonly webhook: { readonly token: string } | null;
  /**
   * Secrets each webhook source authenticates with: the registries file's (which name their
   * registry, and are then the only secrets that registry's deliveries are taken with), then
   * `SIGNET_WEBHOOK_SECRET_<SOURCE>`, then SIGNET_WEBHOOK_TOKEN for every source. A source without
   * any refuses every delivery.
   */
  readonly webhookSecrets: readonly { readonly source: WebhookSource; readonly secret: string; readonly registry: string | null }[];
  /** Registries from SIGNET_REGISTRIES_FILE (their endpoints, insecure flags and credentials are merged into `registry`). */
  readonly registries: readonly RegistryConfig[];
  /** The scheduled reconciliation crawl of the registries file's registries; interval 0 is off. */
  readonly reconcile: { readonly intervalMs: number };
  /** Bounds of every crawl, backfill or scheduled. */
  readonly crawl: CrawlLimits;
  /** How long a webhook delivery is kept after it was last received; 0 keeps every delivery forever. */
  readonly deliveries: { readonly retentionMs: number };
  /**
   * The admission record: `record` is null when SIGNET_ADMISSION_RECORD=off, else how many answered
   * requests may wait in memory for Postgres (more are dropped and counted); records older than
   * `retentionMs` are pruned (0 keeps them forever).
   */
  readonly admissions: { readonly record: { readonly bufferSize: number } | null; readonly retentionMs: number };
  /**
   * How long the decisions of a policy version are kept once it is retired (another version was
   * decided in full after it was last in use); 0 keeps them forever.
   */
  readonly policyVersions: { readonly retentionMs: number };
  readonly verification: {
    /** Trusted root files or directories of them, tried in order. */
    readonly trustedRootPaths: readonly string[];
    readonly trustedKeysDir: string | null;
    /** Background refresh of a trusted root from a TUF repository; null when SIGNET_TUF_REFRESH is 0. */
    readonly tuf: { readonly mirrorUrl: string; readonly rootPath: string | null; readonly cachePath: string; readonly intervalMs: number } | null;
    readonly maxPayloadBytes: number;
    /** Worker threads the worker role verifies signatures on (the verification pool); 0: on its own thread. */
    readonly threads: number;
  };
  readonly registry: {
    /**
     * The only registries Signet contacts or accepts events for (host patterns): SIGNET_ALLOWED_REGISTRIES
     * plus every registry the configuration names anyway (registries file, insecure, endpoints, learn).
     */
    readonly allowed: readonly string[];
    /** Other hosts a registry may redirect to (blob storage) or name as its token realm. */
    readonly redirectHosts: readonly string[];
    readonly insecureHosts: readonly string[];
    readonly authFile: string | null;
    /** Credentials from the registries file; they win over the auth file's for the same host. */
    readonly credentials: readonly (readonly [string, { readonly username: string; readonly password: string }])[];
    /** Registry name → base URL Signet fetches from, when they differ. */
    readonly endpoints: Readonly<Record<string, string>>;
    readonly timeoutMs: number;
    readonly retries: number;
    /** Requests in flight to one registry at most (per process), and the registries file's own limits. */
    readonly concurrency: number;
    readonly concurrencyByRegistry: Readonly<Record<string, number>>;
    readonly maxManifestBytes: number;
  };
  /** `lockMs`: how long a job's lock lasts without renewal — a dead worker's job runs again this long after. */
  readonly worker: { readonly concurrency: number; readonly lockMs: number };
  /** Path of the policy file; null denies every image (`not_covered_by_policy`). */
  readonly policyPath: string | null;
  readonly decisions: {
    /** Registries whose unknown images an admission lookup may enqueue for indexing. */
    readonly learnRegistries: readonly string[];
    /** How long a lookup of an unknown image waits for that indexing (0: answer `unknown` at once). */
    readonly waitMs: number;
    /** Whether an image the ledger has never seen (`unknown`) is allowed; deny by default. */
    readonly allowUnknown: boolean;
    /** Decisions (and tags) an API process keeps in memory, least recently used dropped first. */
    readonly tableMax: number;
  };
  /** Bearer tokens for reading the ledger (GraphQL); empty leaves it open to anyone who can reach the port. */
  readonly api: { readonly tokens: readonly string[] };
  /** Where ownership-drift alerts go (Slack-compatible JSON); null sends none. */
  readonly alerts: { readonly webhookUrl: string | null };
  readonly shutdownTimeoutMs: number;
  readonly logLevel: z.infer<typeof Env>['LOG_LEVEL'];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(`invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.issues = issues;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) {
      deepFreeze(v);
    }
    Object.freeze(value);
  }
  return value;
}

/** Variables holding secrets; each may instead name a file with `<NAME>_FILE` (Kubernetes and Docker secrets). */
const SECRET_VARIABLES = [
  'DATABASE_URL',
  'REDIS_URL',
  'SIGNET_WEBHOOK_TOKEN',
  'SIGNET_API_TOKENS',
  'SIGNET_ALERT_WEBHOOK_URL',
  ...WEBHOOK_SOURCES.map((s) => `SIGNET_WEBHOOK_SECRET_${s.toUpperCase()}`),
];

/** Reads `<NAME>_FILE` into `<NAME>` (one trailing newline dropped); both set, or an unreadable file, is an error. */
function withSecretFiles(env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  const issues: string[] = [];
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined) {
      continue;
    }
    if (env[name] !== undefined) {
      issues.push(`${name} and ${name}_FILE: set one, not both`);
      continue;
    }
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      issues.push(`${name}_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  if (issues.length > 0) {
    throw new ConfigError(issues);
  }
  return out;
}

/** What the shipped manifests put where a secret goes: a value containing it was never edited. */
export const SECRET_PLACEHOLDER = 'CHANGE-ME';

/**
 * The configured secrets that still hold {@link SECRET_PLACEHOLDER} (environment, `_FILE` secrets
 * and the registries file), one issue each, naming where and never the value.
 */
function placeholderSecrets(env: Record<string, string>, registries: readonly RegistryConfig[]): string[] {
  const found = (value: string | undefined) => value?.includes(SECRET_PLACEHOLDER) === true;
  const issue = (where: string) => `${where}: still holds the ${SECRET_PLACEHOLDER} placeholder of the shipped manifests; set a real secret`;
  return [
    ...SECRET_VARIABLES.filter((name) => found(env[name])).map(issue),
    ...registries.flatMap((r) => [
      ...(found(r.webhook?.secret) ? [issue(`SIGNET_REGISTRIES_FILE: ${r.host}: webhook secret`)] : []),
      ...(found(r.credentials?.password) ? [issue(`SIGNET_REGISTRIES_FILE: ${r.host}: credentials password`)] : []),
    ]),
  ];
}

/** A Redis node or sentinel as ioredis takes it. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** One Redis (REDIS_URL), a Redis Cluster (REDIS_CLUSTER_NODES) or a master found through Sentinel (REDIS_SENTINELS). */
export type RedisTopology =
  | { readonly kind: 'single' }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] }
  | { readonly kind: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string };

export interface RedisConfig {
  /** Credentials, TLS (`rediss:`) and database come from here in every topology; host and port in `single`. */
  readonly url: string;
  readonly topology: RedisTopology;
  /** BullMQ's key prefix; hash-tagged (`{signet}`) on a cluster, so each queue's keys share a slot. */
  readonly queuePrefix: string;
  /** Ledger events the decision feed's stream keeps (SIGNET_DECISION_FEED_LENGTH). */
  readonly feedMaxLen: number;
  /** Replicas that must hold a queued job before a webhook is answered 202 (SIGNET_REDIS_WAIT_REPLICAS; 0: none). */
  readonly waitReplicas: number;
}

function redisNode(hostPort: string): RedisNode {
  const i = hostPort.lastIndexOf(':');
  const bracketed = hostPort.endsWith(']');
  return i === -1 || bracketed ? { host: hostPort.replace(/^\[|\]$/g, ''), port: 6379 } : { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) };
}

function redisConfig(e: z.infer<typeof Env>): RedisConfig {
  if (e.REDIS_CLUSTER_NODES.length > 0 && e.REDIS_SENTINELS.length > 0) {
    throw new ConfigError(['REDIS_CLUSTER_NODES and REDIS_SENTINELS: set one, not both']);
  }
  if (e.REDIS_CLUSTER_NODES.length > 0 && e.SIGNET_REDIS_WAIT_REPLICAS > 0) {
    // WAIT has no key, so a cluster client cannot send it to the master that took the jobs.
    throw new ConfigError(['SIGNET_REDIS_WAIT_REPLICAS: not supported with REDIS_CLUSTER_NODES']);
  }
  const topology: RedisTopology =
    e.REDIS_CLUSTER_NODES.length > 0
      ? { kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES.map(redisNode) }
      : e.REDIS_SENTINELS.length > 0
        ? { kind: 'sentinel', sentinels: e.REDIS_SENTINELS.map(redisNode), name: e.REDIS_SENTINEL_NAME }
        : { kind: 'single' };
  return {
    url: e.REDIS_URL,
    topology,
    queuePrefix: topology.kind === 'cluster' ? `{${e.SIGNET_QUEUE_PREFIX}}` : e.SIGNET_QUEUE_PREFIX,
    feedMaxLen: e.SIGNET_DECISION_FEED_LENGTH,
    waitReplicas: e.SIGNET_REDIS_WAIT_REPLICAS,
  };
}

/**
 * Parses the environment once. Throws {@link ConfigError} listing every problem, not only the first.
 *
 * @example loadConfig({ ...process.env, PORT: '0' })
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset" so that `FOO= npm start` behaves like not setting FOO.
  const cleaned = withSecretFiles(Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')));
  const parsed = Env.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  if ((e.SIGNET_TLS_CERT === undefined) !== (e.SIGNET_TLS_KEY === undefined)) {
    throw new ConfigError(['SIGNET_TLS_CERT and SIGNET_TLS_KEY: set both or neither']);
  }
  const headersTimeoutMs = e.SIGNET_HTTP_HEADERS_TIMEOUT_MS ?? Math.min(10_000, e.SIGNET_HTTP_REQUEST_TIMEOUT_MS);
  if (headersTimeoutMs > e.SIGNET_HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(['SIGNET_HTTP_HEADERS_TIMEOUT_MS: must not exceed SIGNET_HTTP_REQUEST_TIMEOUT_MS']);
  }
  if (e.SIGNET_TLS_CLIENT_CA !== undefined && e.SIGNET_TLS_CERT === undefined) {
    throw new ConfigError(['SIGNET_TLS_CLIENT_CA: needs SIGNET_TLS_CERT and SIGNET_TLS_KEY']);
  }
  let registries: RegistryConfig[] = [];
  if (e.SIGNET_REGISTRIES_FILE !== undefined) {
    try {
      registries = loadRegistriesFile(e.SIGNET_REGISTRIES_FILE);
    } catch (err) {
      if (err instanceof RegistriesFileError) {
        throw new ConfigError(err.issues.map((i) => `SIGNET_REGISTRIES_FILE (${e.SIGNET_REGISTRIES_FILE}): ${i}`));
      }
      throw err;
    }
  }
  const placeholders = placeholderSecrets(cleaned, registries);
  if (placeholders.length > 0) {
    throw new ConfigError(placeholders);
  }
  const envEndpoints = e.SIGNET_REGISTRY_ENDPOINTS.map((pair) => {
    const i = pair.indexOf('=');
    return [pair.slice(0, i).toLowerCase(), pair.slice(i + 1).replace(/\/$/, '')] as const;
  });
  const webhookSecrets = [
    ...registries.flatMap((r) => (r.webhook === null ? [] : [{ source: r.webhook.source, secret: r.webhook.secret, registry: r.host }])),
    ...WEBHOOK_SOURCES.flatMap((source) => {
      const secret = e[`SIGNET_WEBHOOK_SECRET_${source.toUpperCase() as Uppercase<WebhookSource>}`];
      return secret === undefined ? [] : [{ source, secret, registry: null }];
    }),
    ...(e.SIGNET_WEBHOOK_TOKEN === undefined ? [] : WEBHOOK_SOURCES.map((source) => ({ source, secret: e.SIGNET_WEBHOOK_TOKEN!, registry: null }))),
  ];
  return deepFreeze({
    roles: e.SIGNET_ROLES,
    http: {
      host: e.HOST,
      port: e.PORT,
      maxWebhookBytes: e.SIGNET_MAX_WEBHOOK_BYTES,
      maxSignedWebhookBytes: e.SIGNET_MAX_SIGNED_WEBHOOK_BYTES,
      maxUnverifiedWebhooks: e.SIGNET_MAX_UNVERIFIED_WEBHOOKS,
      timeouts: { requestMs: e.SIGNET_HTTP_REQUEST_TIMEOUT_MS, headersMs: headersTimeoutMs },
      tls:
        e.SIGNET_TLS_CERT === undefined || e.SIGNET_TLS_KEY === undefined
          ? null
          : { certPath: e.SIGNET_TLS_CERT, keyPath: e.SIGNET_TLS_KEY, clientCaPath: e.SIGNET_TLS_CLIENT_CA ?? null },
      metricsPort: e.SIGNET_METRICS_PORT ?? null,
    },
    revision: e.SIGNET_REVISION,
    database: { url: e.DATABASE_URL, readUrl: e.DATABASE_READ_URL ?? null, prepare: e.SIGNET_PREPARED_STATEMENTS === 'on' },
    redis: redisConfig(e),
    webhook: e.SIGNET_WEBHOOK_TOKEN === undefined ? null : { token: e.SIGNET_WEBHOOK_TOKEN },
    webhookSecrets,
    registries,
    reconcile: { intervalMs: e.SIGNET_RECONCILE_INTERVAL },
    crawl: {
      listPages: e.SIGNET_CRAWL_MAX_LIST_PAGES,
      listEntries: e.SIGNET_CRAWL_MAX_LIST_ENTRIES,
      passPages: e.SIGNET_CRAWL_MAX_PASS_PAGES,
      passEntries: e.SIGNET_CRAWL_MAX_PASS_ENTRIES,
    },
    deliveries: { retentionMs: e.SIGNET_DELIVERY_RETENTION },
    policyVersions: { retentionMs: e.SIGNET_POLICY_VERSION_RETENTION },
    admissions: {
      record: e.SIGNET_ADMISSION_RECORD === 'off' ? null : { bufferSize: e.SIGNET_ADMISSION_RECORD_BUFFER },
      retentionMs: e.SIGNET_ADMISSION_RETENTION,
    },
    verification: {
      trustedRootPaths: e.SIGNET_TRUSTED_ROOT.split(',').map((p) => p.trim()).filter((p) => p !== ''),
      trustedKeysDir: e.SIGNET_TRUSTED_KEYS ?? null,
      tuf:
        e.SIGNET_TUF_REFRESH === 0
          ? null
          : { mirrorUrl: e.SIGNET_TUF_MIRROR, rootPath: e.SIGNET_TUF_ROOT ?? null, cachePath: e.SIGNET_TUF_CACHE, intervalMs: e.SIGNET_TUF_REFRESH },
      maxPayloadBytes: e.SIGNET_MAX_PAYLOAD_BYTES,
      threads: e.SIGNET_VERIFY_THREADS ?? defaultVerifyThreads(availableParallelism()),
    },
    registry: {
      allowed: [
        ...new Set(
          [
            ...e.SIGNET_ALLOWED_REGISTRIES,
            ...registries.map((r) => r.host),
            ...registries.flatMap((r) => (r.signaturesRepository === null ? [] : [r.signaturesRepository.registry])),
            ...e.SIGNET_INSECURE_REGISTRIES,
            ...envEndpoints.map(([name]) => name),
            ...e.SIGNET_LEARN_REGISTRIES,
          ].map((h) => h.toLowerCase()),
        ),
      ],
      redirectHosts: e.SIGNET_ALLOWED_REDIRECT_HOSTS.map((h) => h.toLowerCase()),
      insecureHosts: [...new Set([...e.SIGNET_INSECURE_REGISTRIES.map((h) => h.toLowerCase()), ...registries.filter((r) => r.insecure).map((r) => r.host)])],
      authFile: e.SIGNET_REGISTRY_AUTH_FILE ?? null,
      credentials: registries.flatMap((r) => (r.credentials === null ? [] : [[r.host, r.credentials] as const])),
      // The file's endpoint wins over SIGNET_REGISTRY_ENDPOINTS for the same registry.
      endpoints: Object.fromEntries([...envEndpoints, ...registries.flatMap((r) => (r.endpoint === null ? [] : [[r.host, r.endpoint] as const]))]),
      timeoutMs: e.SIGNET_REGISTRY_TIMEOUT_MS,
      retries: e.SIGNET_REGISTRY_RETRIES,
      concurrency: e.SIGNET_REGISTRY_CONCURRENCY,
      concurrencyByRegistry: Object.fromEntries(registries.flatMap((r) => (r.concurrency === null ? [] : [[r.host, r.concurrency] as const]))),
      maxManifestBytes: e.SIGNET_MAX_MANIFEST_BYTES,
    },
    worker: { concurrency: e.SIGNET_WORKER_CONCURRENCY, lockMs: e.SIGNET_WORKER_LOCK_MS },
    policyPath: e.SIGNET_POLICY ?? null,
    decisions: { learnRegistries: e.SIGNET_LEARN_REGISTRIES.map((h) => h.toLowerCase()), waitMs: e.SIGNET_DECISION_WAIT_MS, allowUnknown: e.SIGNET_UNKNOWN_IMAGES === 'allow', tableMax: e.SIGNET_DECISION_TABLE_MAX },
    api: { tokens: e.SIGNET_API_TOKENS },
    alerts: { webhookUrl: e.SIGNET_ALERT_WEBHOOK_URL ?? null },
    shutdownTimeoutMs: e.SIGNET_SHUTDOWN_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
  });
}
