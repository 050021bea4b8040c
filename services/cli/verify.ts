import { parseArgs } from 'node:util';
import type { Config } from '../common/config.ts';
import { isDigest } from '../common/domain/digest.ts';
import { signatureKind } from '../common/domain/signature.ts';
import { RegistryError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { loadPolicy } from '../common/policy/load.ts';
import { discoverSignatures } from '../core/discovery.ts';
import { loadConfiguredCredentials, registryClientFromConfig } from '../core/oci/from-config.ts';
import { createVerifierFromConfig } from '../core/verification/from-config.ts';
import { imageReferenceArgument, type Command, type CommandIo } from './command.ts';
import { formatTable } from './table.ts';

export const VERIFY_USAGE = `usage: signet verify <image reference> [--json]

Fetches an image's signatures and attestations from its registry now (cosign .sig/.att, OCI 1.1
referrers or the referrers tag) and verifies each, exactly as the worker would, with the configured
trusted roots and keys — and writes nothing: the ledger and the decisions stay as they are. For
debugging a signature.

Exit codes: 0 a signature verified; 1 none did (unsigned, or every one failed); 2 usage or
configuration; 3 no such image in the registry; 4 the registry could not be asked.
`;

export const verify: Command = {
  summary: 'fetch and verify an image\'s signatures now, without writing anything',
  usage: VERIFY_USAGE,
  async run(args: readonly string[], io: CommandIo, config: Config, log: Logger): Promise<number> {
    const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
    const ref = imageReferenceArgument(positionals);
    const [{ policy }, credentials] = await Promise.all([loadPolicy(config.policyPath), loadConfiguredCredentials(config)]);
    const verifier = await createVerifierFromConfig(config, policy);
    const registry = registryClientFromConfig(config, credentials, log);
    const reference = ref.digest ?? ref.tag ?? 'latest';
    let found;
    let manifest;
    try {
      manifest = await registry.getManifest(ref.registry, ref.repository, reference);
      found = await discoverSignatures(
        { registry, verifier, maxPayloadBytes: config.verification.maxPayloadBytes },
        {
          registry: ref.registry,
          repository: ref.repository,
          digest: manifest.digest,
          bytes: manifest.bytes,
          signatures: config.registries.find((r) => r.host === ref.registry)?.signaturesRepository ?? undefined,
        },
        log,
      );
    } catch (err) {
      if (err instanceof RegistryError) {
        io.stderr.write(`signet verify: ${err.message}\n`);
        return err.code === 'NOT_FOUND' ? 3 : 4;
      }
      throw err;
    }
    const image = `${ref.registry}/${ref.repository}@${manifest.digest}`;
    const rows = found.signatures.map((s) => ({
      format: s.format,
      kind: signatureKind(s.format, s.verdict.predicateType),
      predicateType: s.verdict.predicateType,
      outcome: s.verdict.outcome,
      reason: s.verdict.reason,
      subject: s.verdict.identity?.subject ?? null,
      issuer: s.verdict.identity?.issuer ?? null,
      rekorLogIndex: s.verdict.rekor?.logIndex ?? null,
      trustRootVersion: s.verdict.trustRootVersion,
      source: s.sourceDigest,
    }));
    const verified = rows.some((r) => r.kind === 'signature' && r.outcome === 'verified');
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ image, mediaType: manifest.mediaType, verified, discoveryError: found.discoveryError, signatures: rows })}\n`);
    } else {
      io.stdout.write(`${image}${isDigest(reference) ? '' : ` (${reference})`}: ${verified ? 'verified' : rows.length === 0 ? 'unsigned' : 'not verified'}\n`);
      if (found.discoveryError !== null) {
        io.stdout.write(`problems: ${found.discoveryError}\n`);
      }
      if (rows.length > 0) {
        io.stdout.write('\n');
        io.stdout.write(
          formatTable(
            ['kind', 'outcome', 'signer', 'issuer', 'format', 'rekor', 'reason'],
            rows.map((r) => [r.kind, r.outcome, r.subject ?? '-', r.issuer ?? '-', r.format, r.rekorLogIndex ?? '-', r.reason ?? '']),
          ),
        );
      }
    }
    return verified ? 0 : 1;
  },
};
