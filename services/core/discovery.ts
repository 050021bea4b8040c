import { createHash } from 'node:crypto';
import { z } from 'zod';
import { digestTagPrefix, parseCosignTag, type Digest } from '../common/domain/digest.ts';
import { type SignatureFormat, type SignatureRecord, unprovenVerdict } from '../common/domain/signature.ts';
import { RegistryError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { FetchedManifest, RegistryClient } from './oci/client.ts';
import type { ImageManifest } from './oci/media-types.ts';
import { isBundleMediaType, MAX_BUNDLE_BYTES } from './verification/bundle.ts';
import { DSSE_ENVELOPE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE } from './verification/cosign-layer.ts';
import type { SignatureVerifier } from './verification/verifier.ts';

/** Signature layers read from one signature, attestation or referrer manifest. */
export const MAX_SIGNATURE_LAYERS = 64;
/** Signature sources (`.sig`, `.att`, referrers) read for one digest. */
export const MAX_SIGNATURE_SOURCES = 64;

/** cosign's OCI 1.1 signature artifacts (`--registry-referrers-mode=oci-1-1`): simple-signing layers. */
export const COSIGN_SIGNATURE_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';

export interface DiscoveryDeps {
  readonly registry: RegistryClient;
  readonly verifier: SignatureVerifier;
  readonly maxPayloadBytes: number;
}

/** The artifact whose signatures are looked for: its digest, and its manifest bytes when already fetched. */
export interface DiscoverySubject {
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly bytes?: Buffer;
}

export interface Discovered {
  readonly signatures: SignatureRecord[];
  /** Why a source could not be read at all (stored as the manifest's status when nothing else was found). */
  readonly discoveryError: string | null;
}

const Referrers = z.looseObject({
  manifests: z
    .array(z.looseObject({ digest: z.string(), mediaType: z.string().optional(), artifactType: z.string().optional() }))
    .nullish(),
});

/** Artifact types worth fetching from a referrers list; anything else (SBOMs, Notary, …) is skipped. */
export function isSignatureArtifact(artifactType: string | undefined): boolean {
  return artifactType === COSIGN_SIGNATURE_ARTIFACT || isBundleMediaType(artifactType);
}

/**
 * Finds every signature and attestation attached to `subject` and verifies each:
 * - cosign's tags: `sha256-<hex>.sig` (simple-signing layers) and `sha256-<hex>.att` (DSSE layers);
 * - OCI 1.1 referrers: the referrers API, or, when the registry lacks it (distribution 2.8), the
 *   referrers tag schema's `sha256-<hex>` index; Sigstore bundles (cosign v3, GitHub) and cosign's
 *   OCI 1.1 signature artifacts;
 * - `pushed`: the artifact a webhook named (fetched by digest, since the tag may not point at it yet).
 * Transient registry trouble throws (the job retries); anything unusable is a stored outcome.
 */
export async function discoverSignatures(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  log: Logger,
  pushed?: { readonly digest: Digest; readonly tag: string },
): Promise<Discovered> {
  const { registry, repository, digest } = subject;
  const prefix = digestTagPrefix(digest);
  const sources = new Map<Digest, FetchedManifest>();
  const errors: string[] = [];
  const add = (m: FetchedManifest | null) => {
    if (m !== null && sources.size < MAX_SIGNATURE_SOURCES) {
      sources.set(m.digest, m);
    }
  };
  const fetch = async (reference: string, what: string): Promise<FetchedManifest | null> => {
    try {
      return await deps.registry.getManifest(registry, repository, reference);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
        return null;
      }
      if (err instanceof RegistryError && (err.code === 'INVALID' || err.code === 'TOO_LARGE')) {
        errors.push(`${what} is unusable: ${err.message}`);
        return null;
      }
      throw err;
    }
  };
  /** An index listing referrers (the referrers tag schema, or a pushed one): fetch each signature artifact. */
  const addReferrers = async (descriptors: readonly { digest: string; artifactType?: string | undefined }[]) => {
    for (const d of descriptors.filter((r) => isSignatureArtifact(r.artifactType)).slice(0, MAX_SIGNATURE_SOURCES)) {
      if (!sources.has(d.digest as Digest)) {
        add(await fetch(d.digest, `referrer ${d.digest}`));
      }
    }
  };

  if (pushed !== undefined) {
    const artifact = await fetch(pushed.digest, `the pushed signature artifact ${pushed.digest}`);
    // An index under the referrers tag (or named by a crawl) lists referrers; under `.sig` it is hostile.
    const listsReferrers = pushed.tag === '' || parseCosignTag(pushed.tag)?.kind === 'referrers';
    if (artifact?.manifest.kind === 'index' && listsReferrers) {
      await addReferrers(artifact.manifest.manifests);
    } else {
      add(artifact);
    }
  }
  // The three places are independent: asked at once, a job waits for the slowest, not the sum.
  // A pushed `.sig`/`.att` manifest stands for its tag (which may still point at the one before).
  const pushedKind = pushed === undefined ? null : (parseCosignTag(pushed.tag)?.kind ?? null);
  const [sig, att, referrers] = await Promise.all([
    pushedKind === 'sig' ? null : fetch(`${prefix}.sig`, `the signature manifest ${prefix}.sig`),
    pushedKind === 'att' ? null : fetch(`${prefix}.att`, `the attestation manifest ${prefix}.att`),
    listReferrers(deps, subject, fetch),
  ]);
  add(sig);
  add(att);
  await addReferrers(referrers);

  const signatures: SignatureRecord[] = [];
  let subjectBytes = subject.bytes;
  for (const source of sources.values()) {
    if (source.manifest.kind !== 'image') {
      errors.push(`the signature artifact ${source.digest} holds an index, not a signature manifest`);
      continue;
    }
    const manifest = source.manifest;
    if (manifest.subject !== undefined && manifest.subject.digest !== digest) {
      // A referrer filed under another image (a hostile or broken registry): it says nothing about this one.
      errors.push(`the referrer ${source.digest} names ${manifest.subject.digest} as its subject, not ${digest}`);
      continue;
    }
    const layers = manifest.layers.filter((l) => formatOf(l.mediaType) !== null);
    if (layers.length > MAX_SIGNATURE_LAYERS) {
      log.warn({ source: source.digest, layers: layers.length, max: MAX_SIGNATURE_LAYERS }, 'signature manifest has too many layers; verifying the first ones');
    }
    for (const layer of layers.slice(0, MAX_SIGNATURE_LAYERS)) {
      const format = formatOf(layer.mediaType)!;
      if (format === 'sigstore_bundle' && subjectBytes === undefined) {
        // A message-signature bundle signs the manifest bytes; fetched once, only when needed.
        subjectBytes = (await deps.registry.getManifest(registry, repository, digest)).bytes;
      }
      signatures.push(await verifyLayer(deps, subject, { ...subject, bytes: subjectBytes }, source, manifest, layer, format));
    }
  }
  return { signatures, discoveryError: errors.length === 0 ? null : errors.join('; ') };
}

function formatOf(mediaType: string): SignatureFormat | null {
  if (mediaType === SIMPLE_SIGNING_MEDIA_TYPE) {
    return 'cosign_legacy';
  }
  if (mediaType === DSSE_ENVELOPE_MEDIA_TYPE) {
    return 'cosign_attestation';
  }
  return isBundleMediaType(mediaType) ? 'sigstore_bundle' : null;
}

/**
 * The referrers of `subject`: from the referrers API (every page), or from the referrers tag
 * schema's `sha256-<hex>` index when the registry has no such API (it answers 404, as
 * distribution 2.8 does, or something that is not an index).
 */
async function listReferrers(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  fetch: (reference: string, what: string) => Promise<FetchedManifest | null>,
): Promise<{ digest: string; artifactType?: string | undefined }[]> {
  const found: { digest: string; artifactType?: string | undefined }[] = [];
  let next: string | null = `referrers/${subject.digest}`;
  let pages = 0;
  try {
    while (next !== null && pages < 10 && found.length < MAX_SIGNATURE_SOURCES * 4) {
      const page = await deps.registry.listPage(subject.registry, subject.repository, next);
      const parsed = Referrers.safeParse(page.body);
      if (!parsed.success) {
        throw new RegistryError('INVALID', 'the referrers API answered something that is not an image index');
      }
      found.push(...(parsed.data.manifests ?? []));
      next = page.next;
      pages++;
    }
    return found;
  } catch (err) {
    if (!(err instanceof RegistryError) || err.transient || err.code === 'UNAUTHORIZED' || err.code === 'REFUSED') {
      throw err;
    }
  }
  const fallback = await fetch(digestTagPrefix(subject.digest), `the referrers tag ${digestTagPrefix(subject.digest)}`);
  return fallback?.manifest.kind === 'index' ? [...fallback.manifest.manifests] : [];
}

async function verifyLayer(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  withBytes: DiscoverySubject,
  source: FetchedManifest,
  manifest: ImageManifest,
  layer: ImageManifest['layers'][number],
  format: SignatureFormat,
): Promise<SignatureRecord> {
  const annotations = layer.annotations ?? {};
  const base = {
    format,
    materialDigest: materialDigest(layer.digest, annotations),
    sourceDigest: source.digest,
    layerIndex: manifest.layers.indexOf(layer),
    layerDigest: layer.digest,
    layerAnnotations: annotations,
  };
  const limit = format === 'sigstore_bundle' ? MAX_BUNDLE_BYTES : deps.maxPayloadBytes;
  let payload: Buffer;
  try {
    payload = await deps.registry.getBlob(subject.registry, subject.repository, layer.digest, limit);
  } catch (err) {
    if (err instanceof RegistryError && !err.transient && err.code !== 'UNAUTHORIZED') {
      return {
        ...base,
        payload: Buffer.alloc(0),
        subjectBytes: null,
        verdict: unprovenVerdict(
          'malformed',
          `signature payload ${layer.digest} (layer ${base.layerIndex} of ${source.digest}) cannot be read: ${err.message}`,
          deps.verifier.trustRootVersion,
        ),
      };
    }
    throw err;
  }
  const verdict =
    format === 'cosign_legacy'
      ? deps.verifier.verifyCosignLayer({ payload, annotations }, subject.digest)
      : format === 'cosign_attestation'
        ? deps.verifier.verifyCosignAttestation({ payload, annotations }, subject.digest)
        : deps.verifier.verifyBundle(payload, { digest: subject.digest, ...(withBytes.bytes === undefined ? {} : { bytes: withBytes.bytes }) });
  // A message-signature bundle signs the manifest bytes: kept, so it can be re-verified offline.
  const keepBytes = format === 'sigstore_bundle' && verdict.predicateType === null && withBytes.bytes !== undefined;
  return { ...base, payload, subjectBytes: keepBytes ? withBytes.bytes : null, verdict };
}

/** Identifies a signature by everything that makes it: the payload digest and the annotations. */
export function materialDigest(layerDigest: string, annotations: Readonly<Record<string, string>>): Digest {
  const sorted = Object.keys(annotations)
    .sort()
    .map((k) => [k, annotations[k]]);
  return `sha256:${createHash('sha256').update(JSON.stringify([layerDigest, sorted])).digest('hex')}` as Digest;
}
