import { z } from 'zod';
import { RegistryError } from '../../common/errors.ts';
import { isDigest, type Digest } from '../../common/domain/digest.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** Docker schema 1 manifests; recognised only to be refused with a clear message. */
export const DOCKER_MANIFEST_V1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export const IMAGE_MANIFEST_MEDIA_TYPES = [OCI_MANIFEST, DOCKER_MANIFEST] as const;
export const INDEX_MEDIA_TYPES = [OCI_INDEX, DOCKER_MANIFEST_LIST] as const;
/** Every manifest media type Signet asks for, in the `Accept` header of each manifest request. */
export const MANIFEST_MEDIA_TYPES = [...IMAGE_MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES] as const;
export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

/** Upper bound on `layers[]` and `manifests[]`; real images have tens, cosign signatures a handful. */
export const MAX_DESCRIPTORS = 1000;
/** Upper bound on the number of annotations on one descriptor or manifest. */
export const MAX_ANNOTATIONS = 256;

// RFC 6838 type/subtype (+ suffix), e.g. application/vnd.oci.image.layer.v1.tar+gzip.
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

const mediaTypeString = z.string().regex(MEDIA_TYPE_RE, 'not a media type');
const digestString = z.custom<Digest>((v) => isDigest(v), { message: 'not a sha256 digest (sha256: and 64 lower-case hex)' });
const annotations = z
  .record(z.string(), z.string())
  .refine((r) => Object.keys(r).length <= MAX_ANNOTATIONS, `more than ${MAX_ANNOTATIONS} annotations`);

export const PlatformSchema = z.object({
  os: z.string().min(1).max(64),
  architecture: z.string().min(1).max(64),
  variant: z.string().max(64).optional(),
  'os.version': z.string().max(256).optional(),
  'os.features': z.array(z.string().max(256)).max(64).optional(),
  features: z.array(z.string().max(256)).max(64).optional(),
});
export type Platform = z.infer<typeof PlatformSchema>;

export const DescriptorSchema = z.object({
  mediaType: mediaTypeString,
  digest: digestString,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string().max(2048)).max(64).optional(),
  annotations: annotations.optional(),
  artifactType: mediaTypeString.optional(),
  data: z.string().optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const IndexEntrySchema = DescriptorSchema.extend({ platform: PlatformSchema.optional() });
export type IndexEntry = z.infer<typeof IndexEntrySchema>;

/** OCI image manifest / Docker image manifest v2 schema 2. Unknown fields are allowed (OCI extensibility). */
export const ImageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: mediaTypeString.optional(),
  artifactType: mediaTypeString.optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema).max(MAX_DESCRIPTORS, `more than ${MAX_DESCRIPTORS} layers`),
  subject: DescriptorSchema.optional(),
  annotations: annotations.optional(),
});

/** OCI image index / Docker manifest list. */
export const ImageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: mediaTypeString.optional(),
  artifactType: mediaTypeString.optional(),
  manifests: z.array(IndexEntrySchema).max(MAX_DESCRIPTORS, `more than ${MAX_DESCRIPTORS} manifests`),
  subject: DescriptorSchema.optional(),
  annotations: annotations.optional(),
});

export interface ImageManifest {
  readonly kind: 'image';
  readonly mediaType: (typeof IMAGE_MANIFEST_MEDIA_TYPES)[number];
  readonly schemaVersion: 2;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageIndex {
  readonly kind: 'index';
  readonly mediaType: (typeof INDEX_MEDIA_TYPES)[number];
  readonly schemaVersion: 2;
  readonly artifactType?: string;
  readonly manifests: readonly IndexEntry[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

export type ParsedManifest = ImageManifest | ImageIndex;

/** `Application/JSON; charset=utf-8` → `application/json`; `null`/empty → `''`. */
export function normalizeMediaType(value: string | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(value);
}

export function isIndexMediaType(value: string): value is (typeof INDEX_MEDIA_TYPES)[number] {
  return (INDEX_MEDIA_TYPES as readonly string[]).includes(value);
}

/** Content types that say nothing about which manifest this is; the body's `mediaType` then decides. */
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

function invalid(message: string): RegistryError {
  return new RegistryError('INVALID', message);
}

function clip(text: string, max = 120): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function zodMessage(error: z.ZodError): string {
  return clip(z.prettifyError(error).replace(/\s*\n\s*/g, '; '), 500);
}

/**
 * Parses manifest bytes served with `mediaType` (the response's Content-Type, parameters allowed)
 * into an image manifest or an index. Throws `RegistryError('INVALID')` for anything else:
 * non-JSON, schema 1, an unknown media type, a body whose `mediaType` disagrees with the
 * Content-Type, a document that is both a manifest and an index, bad descriptors (non-sha256
 * digests), or more than {@link MAX_DESCRIPTORS} entries.
 */
export function parseManifest(bytes: Uint8Array, mediaType: string | null | undefined): ParsedManifest {
  const contentType = normalizeMediaType(mediaType);
  if (contentType === DOCKER_MANIFEST_V1 || contentType === DOCKER_MANIFEST_V1_SIGNED) {
    throw invalid(`Docker schema 1 manifests (${contentType}) are not supported`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalid(`the manifest (${contentType || 'no Content-Type'}, ${bytes.byteLength} bytes) is not JSON`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalid('the manifest is not a JSON object');
  }
  const doc = raw as Record<string, unknown>;
  if (doc.schemaVersion === 1) {
    throw invalid('Docker schema 1 manifests are not supported');
  }
  if (doc.schemaVersion !== 2) {
    throw invalid(`unsupported manifest schemaVersion ${clip(JSON.stringify(doc.schemaVersion) ?? 'undefined', 40)}`);
  }
  const bodyType = doc.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') {
    throw invalid('the manifest mediaType is not a string');
  }

  let effective: string;
  if (isManifestMediaType(contentType)) {
    if (bodyType !== undefined && bodyType !== contentType) {
      throw invalid(`the manifest body says mediaType ${clip(JSON.stringify(bodyType))} but it was served as ${contentType}`);
    }
    effective = contentType;
  } else if (GENERIC_CONTENT_TYPES.has(contentType) && bodyType !== undefined && isManifestMediaType(bodyType)) {
    effective = bodyType;
  } else {
    const what = contentType || (bodyType === undefined ? 'none' : clip(JSON.stringify(bodyType)));
    throw invalid(`unsupported manifest media type ${clip(what)}; expected one of ${MANIFEST_MEDIA_TYPES.join(', ')}`);
  }

  if (isIndexMediaType(effective)) {
    if ('config' in doc || 'layers' in doc) {
      throw invalid('ambiguous manifest: an index must not have config or layers');
    }
    const parsed = ImageIndexSchema.safeParse(doc);
    if (!parsed.success) {
      throw invalid(`invalid image index: ${zodMessage(parsed.error)}`);
    }
    return { kind: 'index', ...parsed.data, mediaType: effective };
  }
  if ('manifests' in doc) {
    throw invalid('ambiguous manifest: an image manifest must not have manifests');
  }
  if (effective === DOCKER_MANIFEST && bodyType === undefined) {
    throw invalid('a Docker v2 manifest must carry its mediaType');
  }
  const parsed = ImageManifestSchema.safeParse(doc);
  if (!parsed.success) {
    throw invalid(`invalid image manifest: ${zodMessage(parsed.error)}`);
  }
  return { kind: 'image', ...parsed.data, mediaType: effective as ImageManifest['mediaType'] };
}
