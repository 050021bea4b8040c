import type { Kysely } from 'kysely';
import type { Digest } from '../../common/domain/digest.ts';
import * as images from '../../common/db/queries/images.ts';
import * as arrivals from '../../common/db/queries/signature-arrivals.ts';
import { databaseNow } from '../../common/db/clock.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { RegistryError } from '../../common/errors.ts';
import type { Announce } from '../../common/events.ts';
import { IndexManifestJob, type IndexManifestData } from '../../common/jobs/index-manifest.ts';
import type { Logger } from '../../common/logger.ts';
import type { Metrics } from '../../common/metrics.ts';
import { signatureKind } from '../../common/domain/signature.ts';
import type { Decider } from '../../core/decider.ts';
import type { OwnershipAnnouncer } from '../../core/ownership.ts';
import type { FetchedManifest, RegistryClient } from '../../core/oci/client.ts';
import type { SignatureChecks } from '../../core/verification/verifier.ts';
import { discoverSignatures, isSignatureArtifact } from '../../core/discovery.ts';
import type { SignaturesLocation } from '../../common/registries-file.ts';
import { implementJob } from '../kit.ts';

export interface IndexDeps {
  readonly db: Kysely<DB>;
  readonly registry: RegistryClient;
  readonly verifier: SignatureChecks;
  readonly maxPayloadBytes: number;
  readonly decider: Decider;
  readonly ownership: OwnershipAnnouncer;
  readonly metrics?: Metrics;
  /** Adds an index job under its deterministic id (`push-<h>`, `sig-<h>`); resolves to the id. */
  readonly enqueueIndex: (data: IndexManifestData) => Promise<string>;
  /** Tells API replicas about tag moves (decisions go through the decider). */
  readonly announce: Announce;
  /** Where a registry's images keep their signatures when not beside them (the registries file's `signaturesRepository`). */
  readonly signaturesRepositories?: ReadonlyMap<string, SignaturesLocation>;
}

/** Children of one index that are indexed; more is hostile or absurd and is cut off (and said). */
export const MAX_INDEX_CHILDREN = 64;

export type IndexResult =
  | { readonly result: 'indexed'; readonly manifests: readonly images.StoredManifest[] }
  | { readonly result: 'not_found'; readonly reason: string }
  /** Not an image (a referrer artifact that is not a signature), or a manifest Signet refuses to read. */
  | { readonly result: 'skipped' | 'malformed'; readonly reason: string }
  /** A tag as the registry answered it; `unconfirmed` when that is not the digest its webhook named. */
  | { readonly result: 'resolved' | 'unconfirmed'; readonly digest: Digest; readonly queued: string }
  /** A signature pushed to a signatures repository: the images it may be about, queued for a fresh look. */
  | { readonly result: 'forwarded'; readonly queued: readonly string[] };

/**
 * Indexes one manifest: fetches it (and, for an index, names its children), discovers each one's
 * signatures and attestations (cosign `.sig`/`.att` tags, OCI 1.1 referrers or the referrers tag
 * schema), verifies every one and writes the ledger in one transaction. Registry trouble
 * (`RegistryError` TRANSIENT) propagates so the job retries; an image that no longer exists
 * completes as `not_found`, a manifest Signet refuses to read (too large, not a manifest) as
 * `malformed`; every signature ends in a stored outcome.
 */
export async function indexManifest(deps: IndexDeps, data: IndexManifestData, log: Logger): Promise<IndexResult> {
  const { registry, repository } = data;
  const forwarded = await forwardFromSignaturesRepository(deps, data);
  if (forwarded !== null) {
    return forwarded;
  }
  // What this discovery no longer finds is withdrawn as of now, by what caused the look, unless a
  // discovery that started later has recorded already. The database's clock orders them.
  const observation: images.Observation = { at: await databaseNow(deps.db), by: data.trigger.kind === 'recheck' ? data.trigger.cause : 'reindex' };
  let subject;
  try {
    subject = await deps.registry.getManifest(registry, repository, data.digest);
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}@${data.digest} is not in the registry (deleted?)` };
    }
    if (err instanceof RegistryError && (err.code === 'INVALID' || err.code === 'TOO_LARGE')) {
      // Retrying cannot help; nothing is recorded, so admission keeps answering "unknown" (deny).
      return { result: 'malformed', reason: err.message };
    }
    throw err;
  }
  const referred = subject.manifest.subject;
  if (referred !== undefined) {
    // An OCI 1.1 referrer pushed by digest (cosign v3 signatures, GitHub attestations): index the
    // image it is about. Any other referrer (an SBOM, a Notary signature) is not an image.
    if (data.trigger.kind === 'push' && isSignatureArtifact(subject.manifest.artifactType ?? subject.manifest.annotations?.['org.opencontainers.image.artifactType'] ?? layerArtifactType(subject.manifest))) {
      return indexManifest(deps, { ...data, digest: referred.digest, trigger: { kind: 'signature', artifactDigest: subject.digest, tag: '' } }, log);
    }
    return { result: 'skipped', reason: `${subject.digest} is a referrer of ${referred.digest} (${subject.manifest.artifactType ?? 'no artifact type'}), not an image` };
  }

  const signatures = deps.signaturesRepositories?.get(registry);
  let recorded = await discoverAndRecord(deps, data, subject, observation, log);
  // A signature pushed to the signatures repository after this discovery read it, whose own job
  // looked for images with this digest before this one committed, found none: such an arrival is
  // noted before that lookup, so a look at the notes after this commit finds it, and the image is
  // read again. The database's clock stamps both.
  if (signatures !== undefined && (await arrivals.arrivedSince(deps.db, signatures, recorded.manifests.map((m) => m.digest), observation.at))) {
    log.info({ signaturesRepository: `${signatures.registry}/${signatures.repository}` }, 'a signature arrived while the image was read; reading its signatures again');
    recorded = await discoverAndRecord(deps, data, subject, { ...observation, at: await databaseNow(deps.db) }, log);
  }
  return { result: 'indexed', manifests: recorded.manifests };
}

/** Discovers the signatures of a fetched manifest (and its children) and writes the ledger, then decides and announces. */
async function discoverAndRecord(
  deps: IndexDeps,
  data: IndexManifestData,
  subject: FetchedManifest,
  observation: images.Observation,
  log: Logger,
): Promise<images.RecordedIndex> {
  const { registry, repository } = data;
  const manifests: images.IndexedManifest[] = [
    {
      digest: subject.digest,
      mediaType: subject.mediaType,
      size: subject.bytes.length,
      parent: null,
      // A signature push names the signature manifest's digest. Fetch that, not the tag:
      // distribution notifies about a manifest push before it links the tag, so the tag can
      // still point at the previous signature manifest (or nowhere) when the job runs.
      ...(await discoverSignatures(
        deps,
        { registry, repository, digest: subject.digest, bytes: subject.bytes, signatures: deps.signaturesRepositories?.get(registry) },
        log,
        data.trigger.kind === 'signature' ? { digest: data.trigger.artifactDigest, tag: data.trigger.tag } : undefined,
      )),
    },
  ];
  if (subject.manifest.kind === 'index') {
    const children = subject.manifest.manifests.filter(
      // buildx attestation manifests are not runnable images; they are indexed with issue-3 attestations.
      (c) => c.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest',
    );
    if (children.length > MAX_INDEX_CHILDREN) {
      log.warn({ children: children.length, max: MAX_INDEX_CHILDREN }, 'index has too many children; indexing the first ones');
    }
    for (const [position, child] of children.slice(0, MAX_INDEX_CHILDREN).entries()) {
      manifests.push({
        digest: child.digest,
        mediaType: child.mediaType,
        size: child.size,
        parent: {
          digest: subject.digest,
          position,
          platform:
            child.platform === undefined
              ? null
              : { os: child.platform.os, architecture: child.platform.architecture, variant: child.platform.variant ?? null },
        },
        ...(await discoverSignatures(deps, { registry, repository, digest: child.digest, signatures: deps.signaturesRepositories?.get(registry) }, log)),
      });
    }
  }
  for (const m of manifests) {
    for (const s of m.signatures) {
      deps.metrics?.verifications.inc({ format: s.format, kind: signatureKind(s.format, s.verdict.predicateType), outcome: s.verdict.outcome });
    }
  }
  const recorded = await images.recordIndexed(deps.db, registry, repository, manifests, observation);
  await deps.decider.decideManifests(recorded.manifests.map((m) => m.id));
  await deps.ownership.announce(recorded.ownershipChanges);
  return recorded;
}

/**
 * A signature event (a push, or one seen gone) in a repository that keeps other registries'
 * signatures: the subject digest is not an image there, so each image in the ledger with that
 * digest in those registries is queued for a fresh look. Null for any other job.
 */
async function forwardFromSignaturesRepository(deps: IndexDeps, data: IndexManifestData): Promise<IndexResult | null> {
  if (data.trigger.kind === 'push' || deps.signaturesRepositories === undefined) {
    return null;
  }
  const served = [...deps.signaturesRepositories].filter(([, at]) => at.registry === data.registry && at.repository === data.repository).map(([host]) => host);
  if (served.length === 0) {
    return null;
  }
  // Noted first: an image job that read this repository before the push sees the note after its commit.
  await arrivals.noteArrival(deps.db, { registry: data.registry, repository: data.repository }, data.digest);
  const holding = await images.repositoriesHolding(deps.db, served, data.digest);
  const queued = await Promise.all(holding.map((i) => deps.enqueueIndex({ ...data, registry: i.registry, repository: i.repository })));
  return { result: 'forwarded', queued };
}

/** An artifact manifest without `artifactType` is typed by its config media type (OCI 1.1). */
function layerArtifactType(manifest: { kind: string; config?: { mediaType: string }; layers?: readonly { mediaType: string }[] }): string | undefined {
  if (manifest.kind !== 'image') {
    return undefined;
  }
  const layer = manifest.layers?.[0]?.mediaType;
  return isSignatureArtifact(layer) ? layer : manifest.config?.mediaType;
}

/** Manifests indexed by the job, for the `job done` line. */
export function indexSummary(outcome: IndexResult, trigger: string): Record<string, unknown> {
  return { manifests: outcome.result === 'indexed' ? outcome.manifests : undefined, trigger };
}

/**
 * The push and signature-push job. On success it observes the ledger lag: push reported → decision
 * published (the decider published before `indexManifest` returned).
 */
export function indexManifestJob(deps: IndexDeps) {
  return implementJob(IndexManifestJob, {
    bindings: (data) => ({ registry: data.registry, repository: data.repository, 'image.digest': data.digest }),
    handle: ({ data, log }) => indexManifest(deps, data, log),
    result: (outcome) => outcome.result,
    summary: (outcome, data) => indexSummary(outcome, data.trigger.kind),
    after(outcome, data) {
      const eventAt = Date.parse(data.eventAt);
      if (outcome.result === 'indexed' && Number.isFinite(eventAt)) {
        deps.metrics?.ledgerLag.observe(Math.max(0, Date.now() - eventAt) / 1000);
      }
    },
  });
}
