import type { Config } from '../../common/config.ts';
import type { Logger } from '../../common/logger.ts';
import { credentialStoreFrom, loadRegistryCredentials, type CredentialStore, type RegistryCredentials } from './auth.ts';
import { createRegistryClient, type RegistryClient } from './client.ts';

/**
 * Registry credentials from SIGNET_REGISTRY_AUTH_FILE (with its credential helpers) merged with the
 * registries file's (which win over the file's `auths` for the same host); undefined when neither names any.
 */
export async function loadConfiguredCredentials(config: Config): Promise<CredentialStore | undefined> {
  const fromAuthFile = config.registry.authFile === null ? undefined : await loadRegistryCredentials(config.registry.authFile);
  if (config.registry.credentials.length === 0) {
    return fromAuthFile;
  }
  const entries: [string, RegistryCredentials][] = (fromAuthFile?.hosts ?? []).map((h) => [h, fromAuthFile!.get(h)!]);
  return credentialStoreFrom([...entries, ...config.registry.credentials], fromAuthFile?.warnings ?? [], fromAuthFile?.helpers);
}

/** The registry client every role builds the same way from the configuration. */
export function registryClientFromConfig(
  config: Config,
  credentials: CredentialStore | undefined,
  log: Logger,
  onRequest?: (host: string, status: number | 'error') => void,
): RegistryClient {
  return createRegistryClient({
    insecureHosts: config.registry.insecureHosts,
    endpoints: config.registry.endpoints,
    credentials,
    timeoutMs: config.registry.timeoutMs,
    retries: config.registry.retries,
    concurrency: config.registry.concurrency,
    concurrencyByRegistry: config.registry.concurrencyByRegistry,
    maxManifestBytes: config.registry.maxManifestBytes,
    allowedRegistries: config.registry.allowed,
    allowedRedirectHosts: config.registry.redirectHosts,
    log: log.child({ component: 'registry' }),
    ...(onRequest === undefined ? {} : { onRequest }),
  });
}
