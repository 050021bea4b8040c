import type { Db } from '../../services/common/db/client.ts';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';
import type { SignatureOutcome } from '../../services/common/domain/outcome.ts';
import type { SignatureRecord, SignerIdentity } from '../../services/common/domain/signature.ts';
import { parsePolicy } from '../../services/common/policy/policy.ts';

/**
 * Writes what the worker leaves behind for a verified image allowed under `policyVersion`:
 * registry, repository, manifest and decision rows. For tests and benchmarks of the API side
 * alone (decision endpoints, degraded modes), where indexing through a registry adds nothing.
 */
export async function seedAllowedImages(db: Db, opts: { registry: string; repository: string; digests: readonly Digest[]; policyVersion: string; signer: { subject: string; issuer: string } }): Promise<void> {
  const { id: registryId } = await db
    .insertInto('registries')
    .values({ host: opts.registry })
    .onConflict((oc) => oc.column('host').doUpdateSet({ host: opts.registry }))
    .returning('id')
    .executeTakeFirstOrThrow();
  const { id: repositoryId } = await db
    .insertInto('repositories')
    .values({ registry_id: registryId, name: opts.repository })
    .onConflict((oc) => oc.columns(['registry_id', 'name']).doUpdateSet({ name: opts.repository }))
    .returning('id')
    .executeTakeFirstOrThrow();
  for (const digest of opts.digests) {
    const { id } = await db
      .insertInto('manifests')
      .values({ repository_id: repositoryId, digest, media_type: 'application/vnd.oci.image.manifest.v1+json', size: 1, status: 'verified' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('decisions')
      .values({
        manifest_id: id,
        policy_version: opts.policyVersion,
        allowed: true,
        reason: 'verified',
        message: `signed by ${opts.signer.subject}`,
        signers: JSON.stringify([opts.signer]),
        verified_at: new Date(),
      })
      .execute();
  }
}

/**
 * `registry.example.com/team/app` at each of `digests`, signed by alice and allowed under
 * `policyText` (which must allow alice there), as the API-only tests start from.
 */
export async function seedTeamApp(db: Db, policyText: string, digests: readonly Digest[]): Promise<void> {
  await seedAllowedImages(db, {
    registry: 'registry.example.com',
    repository: 'team/app',
    digests,
    policyVersion: parsePolicy(policyText).version,
    signer: { subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
  });
}

/**
 * A keyless `.sig` signature as discovery hands it to the ledger write (`images.recordIndexed`):
 * `material` names it (its material digest), `source` the artifact it was read from; verified by
 * `signer` unless `outcome` says otherwise (a failed one names no signer). An attestation when
 * `predicateType` is given.
 */
export function signatureRecord(opts: {
  readonly material: string;
  readonly source?: string;
  readonly signer: SignerIdentity | null;
  readonly outcome?: SignatureOutcome;
  readonly predicateType?: string;
}): SignatureRecord {
  const outcome = opts.outcome ?? 'verified';
  return {
    format: opts.predicateType === undefined ? 'cosign_legacy' : 'cosign_attestation',
    materialDigest: sha256Digest(`material ${opts.material}`),
    sourceDigest: sha256Digest(`source ${opts.source ?? opts.material}`),
    layerIndex: 0,
    layerDigest: sha256Digest(`layer ${opts.material}`),
    payload: Buffer.from(`{"material":"${opts.material}"}`),
    subjectBytes: null,
    layerAnnotations: {},
    verdict: {
      outcome,
      reason: outcome === 'verified' ? null : `${outcome} (test)`,
      identity: opts.signer,
      claims: {},
      key: null,
      certificate: null,
      rekor: null,
      tsaTime: null,
      predicateType: opts.predicateType ?? null,
      annotations: null,
      trustRootVersion: 'test',
    },
  };
}
