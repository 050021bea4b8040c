import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isRegistryHost, normalizeRegistry } from './domain/image-ref.ts';
import { WEBHOOK_SOURCES, type WebhookSource } from './domain/registry-event.ts';

/** One registry Signet hears from and reads, as the registries file describes it. */
export interface RegistryConfig {
  /** As image references name it (`registry.example.com`, `127.0.0.1:5000`), lower-case. */
  readonly host: string;
  /** Where Signet reaches it when that differs from `host` (`http://registry:5000`). */
  readonly endpoint: string | null;
  /** Spoken to over plain HTTP. */
  readonly insecure: boolean;
  readonly credentials: { readonly username: string; readonly password: string } | null;
  /** The webhook source it notifies through, and the secret that authenticates it. */
  readonly webhook: { readonly source: WebhookSource; readonly secret: string } | null;
  /** Included in the scheduled reconciliation crawl. */
  readonly reconcile: boolean;
  /** Requests Signet keeps in flight to it at most (per process); null: SIGNET_REGISTRY_CONCURRENCY. */
  readonly concurrency: number | null;
  /**
   * The registry this one mirrors (its images have the same digests there): admission requests
   * for this registry's images by digest are decided from the source image's ledger entry.
   */
  readonly mirrorOf: { readonly registry: string; readonly prefix: string } | null;
  /**
   * Where this registry's images keep their signatures and attestations, when not beside them:
   * cosign's `COSIGN_REPOSITORY` (`sha256-<hex>.sig`/`.att` tags and referrers there).
   */
  readonly signaturesRepository: SignaturesLocation | null;
}

/** A repository holding other images' signatures (cosign's `COSIGN_REPOSITORY`). */
export interface SignaturesLocation {
  readonly registry: string;
  readonly repository: string;
}

const secretValue = z.string().min(16, 'must be at least 16 characters');

const Credentials = z.strictObject({ username: z.string().min(1), password: z.string().min(1).optional(), passwordFile: z.string().min(1).optional() });

const Entry = z.strictObject({
  host: z
    .string()
    .transform((h) => h.toLowerCase())
    .refine(isRegistryHost, 'expected host or host:port, as image references name the registry'),
  endpoint: z
    .string()
    .regex(/^https?:\/\/[^/?#\s]+\/?$/i, 'expected http(s)://host[:port]')
    .transform((u) => u.replace(/\/$/, ''))
    .optional(),
  insecure: z.boolean().default(false),
  credentials: Credentials.optional(),
  webhook: z.strictObject({ source: z.enum(WEBHOOK_SOURCES), secret: z.string().min(1).optional(), secretFile: z.string().min(1).optional() }).optional(),
  reconcile: z.boolean().default(true),
  concurrency: z.number().int().min(1).max(256).optional(),
  mirrorOf: z
    .strictObject({
      registry: z
        .string()
        .transform((h) => normalizeRegistry(h))
        .refine(isRegistryHost, 'expected host or host:port'),
      prefix: z
        .string()
        .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/, 'expected a repository path such as dockerhub or cache/docker-hub')
        .optional(),
    })
    .optional(),
  signaturesRepository: z
    .string()
    .regex(/^[^/\s]+\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, 'expected host/repository, as cosign\'s COSIGN_REPOSITORY names it')
    .refine((v) => isRegistryHost(v.slice(0, v.indexOf('/')).toLowerCase()), 'expected host/repository, as cosign\'s COSIGN_REPOSITORY names it')
    .optional(),
});

const RegistriesFile = z.strictObject({ registries: z.array(Entry).max(1_000) }).superRefine((doc, ctx) => {
  const seen = new Map<string, number>();
  doc.registries.forEach((r, i) => {
    const first = seen.get(r.host);
    if (first !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['registries', i, 'host'], message: `${r.host} is already configured at registries.${first}` });
    }
    seen.set(r.host, i);
    if (r.credentials !== undefined && (r.credentials.password === undefined) === (r.credentials.passwordFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['registries', i, 'credentials'], message: 'set exactly one of password and passwordFile' });
    }
    if (r.mirrorOf !== undefined && normalizeRegistry(r.host) === r.mirrorOf.registry) {
      ctx.addIssue({ code: 'custom', path: ['registries', i, 'mirrorOf', 'registry'], message: 'a registry cannot mirror itself' });
    }
    if (r.webhook !== undefined && (r.webhook.secret === undefined) === (r.webhook.secretFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['registries', i, 'webhook'], message: 'set exactly one of secret and secretFile' });
    }
  });
});

/** The registries file is missing, unreadable or invalid; `issues` name the path of each problem. */
export class RegistriesFileError extends Error {
  override readonly name = 'RegistriesFileError';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(issues.join('; '));
    this.issues = issues;
  }
}

/**
 * Parses and validates a registries file (YAML or JSON). Secret and password files are read here,
 * so a missing one fails at start. Throws {@link RegistriesFileError} listing every problem with its
 * path, e.g. `registries.1.webhook.source: Invalid option: expected one of "distribution"|…`.
 *
 * @example
 * registries:
 *   - host: harbor.example.com
 *     credentials: { username: signet, passwordFile: /run/secrets/harbor }
 *     webhook: { source: harbor, secretFile: /run/secrets/harbor-webhook }
 *   - host: 127.0.0.1:5000
 *     insecure: true
 *     webhook: { source: distribution, secret: a-long-random-token }
 */
export function parseRegistriesFile(text: string, readSecret: (path: string) => string = readSecretFile): RegistryConfig[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new RegistriesFileError([`not YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const parsed = RegistriesFile.safeParse(raw);
  if (!parsed.success) {
    throw new RegistriesFileError(parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`));
  }
  const issues: string[] = [];
  const resolve = (value: string | undefined, file: string | undefined, path: string): string => {
    if (value !== undefined) {
      return value;
    }
    try {
      return readSecret(file ?? '');
    } catch (err) {
      issues.push(`${path}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return '';
    }
  };
  const registries = parsed.data.registries.map((r, i): RegistryConfig => {
    const credentials =
      r.credentials === undefined
        ? null
        : { username: r.credentials.username, password: resolve(r.credentials.password, r.credentials.passwordFile, `registries.${i}.credentials.passwordFile`) };
    let webhook: RegistryConfig['webhook'] = null;
    if (r.webhook !== undefined) {
      const secret = resolve(r.webhook.secret, r.webhook.secretFile, `registries.${i}.webhook.secretFile`);
      const checked = secretValue.safeParse(secret);
      if (!checked.success && secret !== '') {
        issues.push(`registries.${i}.webhook.secret: ${checked.error.issues[0]!.message}`);
      }
      webhook = { source: r.webhook.source, secret };
    }
    const mirrorOf = r.mirrorOf === undefined ? null : { registry: r.mirrorOf.registry, prefix: r.mirrorOf.prefix ?? '' };
    const sigs = r.signaturesRepository;
    const slash = sigs?.indexOf('/') ?? -1;
    const signaturesRepository = sigs === undefined ? null : { registry: normalizeRegistry(sigs.slice(0, slash)), repository: sigs.slice(slash + 1) };
    return { host: r.host, endpoint: r.endpoint ?? null, insecure: r.insecure, credentials, webhook, reconcile: r.reconcile, concurrency: r.concurrency ?? null, mirrorOf, signaturesRepository };
  });
  if (issues.length > 0) {
    throw new RegistriesFileError(issues);
  }
  return registries;
}

function readSecretFile(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/** Reads and parses the registries file at `path`. Throws {@link RegistriesFileError}. */
export function loadRegistriesFile(path: string): RegistryConfig[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RegistriesFileError([`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseRegistriesFile(text);
}
