import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { cosignSignatureTag, isDigest, parseCosignTag, type Digest } from '../../common/domain/digest.ts';
import { type SignatureRecord, unprovenVerdict } from '../../common/domain/signature.ts';
import { recordIndexedManifests, type IndexedManifest, type StoredManifest } from '../../common/db/queries/manifests.ts';
import { recordTag } from '../../common/db/queries/tags.ts';
import type { DB } from '../../common/db/schema.generated.ts';
import { RegistryError } from '../../common/errors.ts';
import { indexJobFor, type IndexManifestData, type LearnImageData, type ResolveTagData } from '../../common/jobs/index-manifest.ts';
import type { Logger } from '../../common/logger.ts';
import type { Decider } from '../decider.ts';
import type { OwnershipAnnouncer } from '../ownership.ts';
import type { RegistryClient } from '../oci/client.ts';
import type { ImageManifest } from '../oci/media-types.ts';
import { SIMPLE_SIGNING_MEDIA_TYPE } from '../verification/cosign-layer.ts';
import type { SignatureVerifier } from '../verification/verifier.ts';

export interface IndexDeps {
  readonly db: Kysely<DB>;
  readonly registry: RegistryClient;
  readonly verifier: SignatureVerifier;
  readonly maxPayloadBytes: number;
  readonly decider: Decider;
  readonly ownership: OwnershipAnnouncer;
  /** Adds an index job under its deterministic id (`push-<h>`, `sig-<h>`); resolves to the id. */
  readonly enqueueIndex: (data: IndexManifestData) => Promise<string>;
}

/** Children of one index that are indexed; more is hostile or absurd and is cut off (and said). */
export const MAX_INDEX_CHILDREN = 64;
/** Signature layers read from one `.sig` manifest. */
export const MAX_SIGNATURE_LAYERS = 64;

export type IndexResult =
  | { readonly result: 'indexed'; readonly manifests: readonly StoredManifest[] }
  | { readonly result: 'not_found'; readonly reason: string }
  | { readonly result: 'resolved'; readonly digest: Digest; readonly queued: string };

/**
 * Indexes one manifest: fetches it (and, for an index, names its children), discovers each one's
 * cosign signatures under `sha256-<hex>.sig`, verifies every layer and writes the ledger in one
 * transaction. Registry trouble (`RegistryError` TRANSIENT) propagates so the job retries; an
 * image that no longer exists completes as `not_found`; every signature ends in a stored outcome.
 */
export async function indexManifest(deps: IndexDeps, data: IndexManifestData, log: Logger): Promise<IndexResult> {
  const { registry, repository } = data;
  let subject;
  try {
    subject = await deps.registry.getManifest(registry, repository, data.digest);
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}@${data.digest} is not in the registry (deleted?)` };
    }
    throw err;
  }

  const manifests: IndexedManifest[] = [
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
        registry,
        repository,
        subject.digest,
        log,
        data.trigger.kind === 'signature' ? data.trigger.artifactDigest : undefined,
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
        ...(await discoverSignatures(deps, registry, repository, child.digest, log)),
      });
    }
  }
  const recorded = await recordIndexedManifests(deps.db, registry, repository, manifests);
  await deps.decider.decideManifests(recorded.manifests.map((m) => m.id));
  await deps.ownership.announce(recorded.ownershipChanges);
  return { result: 'indexed', manifests: recorded.manifests };
}

/**
 * Indexes an image an admission point asked about: resolves the reference (tag or digest) in the
 * registry, records the tag, then indexes the digest as a push would.
 */
export async function learnImage(deps: IndexDeps, data: LearnImageData, log: Logger): Promise<IndexResult> {
  const { registry, repository, reference } = data;
  let digest: Digest;
  try {
    digest = isDigest(reference) ? reference : (await deps.registry.getManifest(registry, repository, reference)).digest;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}:${reference} is not in the registry` };
    }
    throw err;
  }
  const result = await indexManifest(deps, { registry, repository, digest, trigger: { kind: 'push' }, eventAt: new Date().toISOString() }, log);
  if (!isDigest(reference) && result.result === 'indexed') {
    await recordTag(deps.db, registry, repository, reference, digest, new Date());
  }
  return result;
}

/**
 * Resolves a pushed tag whose notification named no digest, records the tag move (cosign artifact
 * tags are not image tags), then queues the ordinary index job, so the digest is indexed once
 * whoever names it (a webhook with the digest, a backfill, this).
 */
export async function resolveTag(deps: IndexDeps, data: ResolveTagData): Promise<IndexResult> {
  const { registry, repository, tag } = data;
  let digest: Digest;
  try {
    digest = (await deps.registry.getManifest(registry, repository, tag)).digest;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      return { result: 'not_found', reason: `${registry}/${repository}:${tag} is not in the registry (deleted or moved on?)` };
    }
    throw err;
  }
  if (parseCosignTag(tag) === null) {
    await recordTag(deps.db, registry, repository, tag, digest, new Date(data.eventAt));
  }
  const queued = await deps.enqueueIndex(indexJobFor({ registry, repository, digest, tag, at: data.eventAt }));
  return { result: 'resolved', digest, queued };
}

async function discoverSignatures(
  deps: IndexDeps,
  registry: string,
  repository: string,
  digest: Digest,
  log: Logger,
  signatureManifest?: Digest,
): Promise<Pick<IndexedManifest, 'signatures' | 'discoveryError'>> {
  let sig;
  try {
    sig = await deps.registry.getManifest(registry, repository, signatureManifest ?? cosignSignatureTag(digest));
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      // The pushed signature manifest is gone again (replaced and deleted): whatever the tag holds now.
      return signatureManifest === undefined
        ? { signatures: [], discoveryError: null }
        : discoverSignatures(deps, registry, repository, digest, log);
    }
    if (err instanceof RegistryError && (err.code === 'INVALID' || err.code === 'TOO_LARGE')) {
      return { signatures: [], discoveryError: `the signature manifest ${cosignSignatureTag(digest)} is unusable: ${err.message}` };
    }
    throw err;
  }
  if (sig.manifest.kind !== 'image') {
    return { signatures: [], discoveryError: `the signature tag ${cosignSignatureTag(digest)} holds an index, not a signature manifest` };
  }
  const layers = sig.manifest.layers.filter((l) => l.mediaType === SIMPLE_SIGNING_MEDIA_TYPE);
  if (layers.length > MAX_SIGNATURE_LAYERS) {
    log.warn({ layers: layers.length, max: MAX_SIGNATURE_LAYERS }, 'signature manifest has too many layers; verifying the first ones');
  }
  const signatures: SignatureRecord[] = [];
  for (const layer of layers.slice(0, MAX_SIGNATURE_LAYERS)) {
    signatures.push(await verifyLayer(deps, registry, repository, digest, sig.digest, sig.manifest, layer));
  }
  return { signatures, discoveryError: null };
}

async function verifyLayer(
  deps: IndexDeps,
  registry: string,
  repository: string,
  subject: Digest,
  sourceDigest: Digest,
  manifest: ImageManifest,
  layer: ImageManifest['layers'][number],
): Promise<SignatureRecord> {
  const annotations = layer.annotations ?? {};
  const base = {
    format: 'cosign_legacy' as const,
    materialDigest: materialDigest(layer.digest, annotations),
    sourceDigest,
    layerIndex: manifest.layers.indexOf(layer),
    layerDigest: layer.digest,
    layerAnnotations: annotations,
  };
  let payload: Buffer;
  try {
    payload = await deps.registry.getBlob(registry, repository, layer.digest, deps.maxPayloadBytes);
  } catch (err) {
    if (err instanceof RegistryError && !err.transient && err.code !== 'UNAUTHORIZED') {
      return {
        ...base,
        payload: Buffer.alloc(0),
        verdict: unprovenVerdict(
          'malformed',
          `signature payload ${layer.digest} (layer ${base.layerIndex}) cannot be read: ${err.message}`,
          deps.verifier.trustRootVersion,
        ),
      };
    }
    throw err;
  }
  return { ...base, payload, verdict: deps.verifier.verifyCosignLayer({ payload, annotations }, subject) };
}

/** Identifies a signature by everything that makes it: the payload digest and the annotations. */
function materialDigest(layerDigest: string, annotations: Readonly<Record<string, string>>): Digest {
  const sorted = Object.keys(annotations)
    .sort()
    .map((k) => [k, annotations[k]]);
  return `sha256:${createHash('sha256').update(JSON.stringify([layerDigest, sorted])).digest('hex')}` as Digest;
}
