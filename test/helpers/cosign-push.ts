import type { Digest } from '../../services/common/domain/digest.ts';
import { cosignSignatureTag, digestTagPrefix, sha256Digest } from '../../services/common/domain/digest.ts';
import { DSSE_ENVELOPE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, type CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import { OCI_INDEX, OCI_MANIFEST, pushBlob, pushManifest } from './oci-push.ts';

const EMPTY_CONFIG = Buffer.from('{}');

/**
 * Pushes signatures the way cosign does: payload blobs, then an OCI manifest under
 * `sha256-<hex>.sig` whose layers are simple-signing payloads carrying the annotations.
 * Returns the signature manifest's digest. `tagged: false` pushes the manifest by digest only.
 */
export async function pushCosignSignatures(
  registryUrl: string,
  repo: string,
  subject: Digest,
  layers: readonly CosignLayer[],
  opts: { tagged?: boolean } = {},
): Promise<Digest> {
  const configDigest = await pushBlob(registryUrl, repo, EMPTY_CONFIG);
  const descriptors = [];
  for (const layer of layers) {
    const digest = await pushBlob(registryUrl, repo, layer.payload);
    descriptors.push({ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest, size: layer.payload.length, annotations: layer.annotations });
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: EMPTY_CONFIG.length },
    layers: descriptors,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  // Untagged: pushed by its own digest, as if the registry had not linked the tag yet.
  const reference = opts.tagged === false ? sha256Digest(bytes) : cosignSignatureTag(subject);
  return pushManifest(registryUrl, repo, reference, bytes, OCI_MANIFEST);
}

const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/**
 * Pushes attestations the way `cosign attest` (v2) does: DSSE envelope blobs, then an OCI manifest
 * under `sha256-<hex>.att` whose layers carry the certificate, chain, Rekor bundle and predicate type.
 */
export async function pushCosignAttestations(registryUrl: string, repo: string, subject: Digest, layers: readonly CosignLayer[]): Promise<Digest> {
  const configDigest = await pushBlob(registryUrl, repo, EMPTY_CONFIG);
  const descriptors = [];
  for (const layer of layers) {
    const digest = await pushBlob(registryUrl, repo, layer.payload);
    descriptors.push({ mediaType: DSSE_ENVELOPE_MEDIA_TYPE, digest, size: layer.payload.length, annotations: layer.annotations });
  }
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: EMPTY_CONFIG.length },
      layers: descriptors,
    }),
  );
  return pushManifest(registryUrl, repo, `${digestTagPrefix(subject)}.att`, bytes, OCI_MANIFEST);
}

/**
 * Attaches a Sigstore bundle as an OCI 1.1 referrer, as cosign v3 and `gh attest --push-to-registry`
 * do: the bundle blob, an artifact manifest (`artifactType` bundle v0.3, empty config, `subject`)
 * pushed by digest, and — for registries without the referrers API, like distribution 2.8 — the
 * referrers tag schema's `sha256-<hex>` index, updated to list it. Returns the referrer's digest.
 * `layerAnnotations` go on the bundle's layer descriptor (cosign writes none there).
 */
export async function pushBundleReferrer(
  registryUrl: string,
  repo: string,
  subject: { digest: Digest; mediaType: string; size: number },
  bundle: Buffer,
  predicateType: string | null,
  opts: { layerAnnotations?: Record<string, string> } = {},
): Promise<Digest> {
  const empty = Buffer.from('{}');
  const configDigest = await pushBlob(registryUrl, repo, empty);
  const bundleDigest = await pushBlob(registryUrl, repo, bundle);
  const annotations: Record<string, string> = {
    'dev.sigstore.bundle.content': predicateType === null ? 'message-signature' : 'dsse-envelope',
    ...(predicateType === null ? {} : { 'dev.sigstore.bundle.predicateType': predicateType }),
  };
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: BUNDLE_V03,
      config: { mediaType: OCI_EMPTY, digest: configDigest, size: empty.length },
      layers: [{ mediaType: BUNDLE_V03, digest: bundleDigest, size: bundle.length, ...(opts.layerAnnotations === undefined ? {} : { annotations: opts.layerAnnotations }) }],
      subject,
      annotations,
    }),
  );
  const referrer = await pushManifest(registryUrl, repo, sha256Digest(bytes), bytes, OCI_MANIFEST);
  const tag = digestTagPrefix(subject.digest);
  const existing = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, { headers: { accept: OCI_INDEX } });
  const index = existing.ok
    ? ((await existing.json()) as { manifests: unknown[] })
    : { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] as unknown[] };
  index.manifests.push({ mediaType: OCI_MANIFEST, digest: referrer, size: bytes.length, artifactType: BUNDLE_V03, annotations });
  await pushManifest(registryUrl, repo, tag, Buffer.from(JSON.stringify(index)), OCI_INDEX);
  return referrer;
}
