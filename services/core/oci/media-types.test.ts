import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../common/errors.ts';
import { sha256Digest } from '../../common/domain/digest.ts';
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  MAX_DESCRIPTORS,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  parseManifest,
} from './media-types.ts';

const d1 = sha256Digest('one');
const d2 = sha256Digest('two');

const image = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: { mediaType: OCI_CONFIG, digest: d1, size: 3 },
  layers: [{ mediaType: OCI_LAYER_GZIP, digest: d2, size: 3, annotations: { 'dev.cosignproject.cosign/signature': 'MEUC' } }],
  ...extra,
});

const index = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: OCI_INDEX,
  manifests: [
    { mediaType: OCI_MANIFEST, digest: d1, size: 10, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: OCI_MANIFEST, digest: d2, size: 10, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ],
  ...extra,
});

const bytes = (doc: unknown): Buffer => Buffer.from(JSON.stringify(doc));

function invalid(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('INVALID');
    expect((err as RegistryError).message).toMatch(message);
    return;
  }
  throw new Error('expected RegistryError INVALID');
}

describe('parseManifest', () => {
  it('parses an OCI image manifest with annotations, subject and artifactType', () => {
    const m = parseManifest(
      bytes(image({ artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: { mediaType: OCI_MANIFEST, digest: d1, size: 1 } })),
      `${OCI_MANIFEST}; charset=utf-8`,
    );
    expect(m.kind).toBe('image');
    if (m.kind !== 'image') {
      return;
    }
    expect(m.mediaType).toBe(OCI_MANIFEST);
    expect(m.config.digest).toBe(d1);
    expect(m.layers[0]?.annotations?.['dev.cosignproject.cosign/signature']).toBe('MEUC');
    expect(m.subject?.digest).toBe(d1);
    expect(m.artifactType).toBe('application/vnd.dev.cosign.artifact.sig.v1+json');
  });

  it('parses an OCI index with platforms', () => {
    const m = parseManifest(bytes(index()), OCI_INDEX);
    expect(m.kind).toBe('index');
    if (m.kind === 'index') {
      expect(m.manifests.map((e) => e.platform?.architecture)).toEqual(['amd64', 'arm64']);
      expect(m.manifests[1]?.platform?.variant).toBe('v8');
    }
  });

  it('parses Docker v2 manifests and manifest lists', () => {
    expect(parseManifest(bytes(image({ mediaType: DOCKER_MANIFEST })), DOCKER_MANIFEST).kind).toBe('image');
    expect(parseManifest(bytes(index({ mediaType: DOCKER_MANIFEST_LIST })), DOCKER_MANIFEST_LIST).kind).toBe('index');
  });

  it('accepts an OCI manifest without mediaType in the body when the Content-Type says what it is', () => {
    const doc = image();
    delete doc.mediaType;
    expect(parseManifest(bytes(doc), OCI_MANIFEST).mediaType).toBe(OCI_MANIFEST);
  });

  it('falls back to the body mediaType for a generic Content-Type', () => {
    expect(parseManifest(bytes(index()), 'application/json').mediaType).toBe(OCI_INDEX);
    invalid(() => {
      const doc = image();
      delete doc.mediaType;
      return parseManifest(bytes(doc), 'application/json');
    }, /unsupported manifest media type/);
  });

  it('refuses a body whose mediaType disagrees with the Content-Type', () => {
    invalid(() => parseManifest(bytes(image()), OCI_INDEX), /says mediaType .* but it was served as/);
    invalid(() => parseManifest(bytes(image({ mediaType: DOCKER_MANIFEST })), OCI_MANIFEST), /served as/);
  });

  it('refuses schema 1, other schema versions, non-JSON and non-objects', () => {
    invalid(() => parseManifest(bytes({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'), /schema 1/);
    invalid(() => parseManifest(bytes({ schemaVersion: 1 }), 'application/json'), /schema 1/);
    invalid(() => parseManifest(bytes(image({ schemaVersion: 3 })), OCI_MANIFEST), /schemaVersion 3/);
    invalid(() => parseManifest(bytes(image({ schemaVersion: '2' })), OCI_MANIFEST), /schemaVersion/);
    invalid(() => parseManifest(Buffer.from('<html>nope</html>'), OCI_MANIFEST), /not JSON/);
    invalid(() => parseManifest(bytes([image()]), OCI_MANIFEST), /not a JSON object/);
    invalid(() => parseManifest(Buffer.from('null'), OCI_MANIFEST), /not a JSON object/);
  });

  it('refuses unknown media types', () => {
    invalid(() => parseManifest(bytes(image({ mediaType: 'application/vnd.example+json' })), 'application/vnd.example+json'), /unsupported/);
    invalid(() => parseManifest(bytes(image()), 'text/html'), /unsupported manifest media type text\/html/);
  });

  it('refuses descriptors with non-sha256 or malformed digests, and negative sizes', () => {
    const sha512 = `sha512:${'a'.repeat(128)}`;
    invalid(() => parseManifest(bytes(image({ config: { mediaType: OCI_CONFIG, digest: sha512, size: 1 } })), OCI_MANIFEST), /sha256/);
    invalid(() => parseManifest(bytes(image({ config: { mediaType: OCI_CONFIG, digest: `sha256:${'A'.repeat(64)}`, size: 1 } })), OCI_MANIFEST), /sha256/);
    invalid(() => parseManifest(bytes(image({ config: { mediaType: OCI_CONFIG, digest: d1, size: -1 } })), OCI_MANIFEST), /invalid image manifest/);
    invalid(() => parseManifest(bytes(index({ manifests: [{ mediaType: OCI_MANIFEST, digest: 'sha256:abc', size: 1 }] })), OCI_INDEX), /sha256/);
  });

  it(`refuses more than ${MAX_DESCRIPTORS} layers or manifests`, () => {
    const layer = { mediaType: OCI_LAYER_GZIP, digest: d2, size: 1 };
    expect(parseManifest(bytes(image({ layers: Array(MAX_DESCRIPTORS).fill(layer) })), OCI_MANIFEST).kind).toBe('image');
    invalid(() => parseManifest(bytes(image({ layers: Array(MAX_DESCRIPTORS + 1).fill(layer) })), OCI_MANIFEST), /more than 1000 layers/);
    const entry = { mediaType: OCI_MANIFEST, digest: d1, size: 1 };
    invalid(() => parseManifest(bytes(index({ manifests: Array(MAX_DESCRIPTORS + 1).fill(entry) })), OCI_INDEX), /more than 1000 manifests/);
  });

  it('refuses documents that are both a manifest and an index', () => {
    invalid(() => parseManifest(bytes(image({ manifests: [] })), OCI_MANIFEST), /ambiguous/);
    invalid(() => parseManifest(bytes(index({ layers: [] })), OCI_INDEX), /ambiguous/);
  });

  it('refuses missing required fields', () => {
    const doc = image();
    delete doc.config;
    invalid(() => parseManifest(bytes(doc), OCI_MANIFEST), /config/);
    invalid(() => parseManifest(bytes(index({ manifests: undefined })), OCI_INDEX), /manifests/);
    const docker = image({ mediaType: DOCKER_MANIFEST });
    delete docker.mediaType;
    invalid(() => parseManifest(bytes(docker), DOCKER_MANIFEST), /must carry its mediaType/);
  });
});
