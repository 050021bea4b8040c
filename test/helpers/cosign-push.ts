import type { Digest } from '../../services/common/domain/digest.ts';
import { cosignSignatureTag, sha256Digest } from '../../services/common/domain/digest.ts';
import { SIMPLE_SIGNING_MEDIA_TYPE, type CosignLayer } from '../../services/worker/verification/cosign-layer.ts';
import { OCI_MANIFEST, pushBlob, pushManifest } from './oci-push.ts';

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
