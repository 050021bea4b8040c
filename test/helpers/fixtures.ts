import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CosignLayer } from '../../services/core/verification/cosign-layer.ts';

/** The real-world fixtures shipped in `test/fixtures` (each folder's PROVENANCE.md names its sources). */
export const FIXTURES = process.env.SIGNET_FIXTURES ?? fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixturePath(rel: string): string {
  return `${FIXTURES.replace(/\/$/, '')}/${rel}`;
}

export function readFixture(rel: string): Buffer {
  return readFileSync(fixturePath(rel));
}

export function readFixtureJson<T = unknown>(rel: string): T {
  return JSON.parse(readFixture(rel).toString('utf8')) as T;
}

interface SigManifest {
  layers: { digest: string; annotations?: Record<string, string> }[];
}

/** Layers of a `.sig` manifest fixture, with each payload read from `blobs/sha256-<hex>.json` beside it. */
export function cosignLayersFromFixture(dir: string, sigManifest: string): CosignLayer[] {
  const manifest = readFixtureJson<SigManifest>(`${dir}/${sigManifest}`);
  return manifest.layers.map((l) => ({
    payload: readFixture(`${dir.replace(/\/manifests$/, '')}/blobs/${l.digest.replace(':', '-')}.json`),
    annotations: l.annotations ?? {},
  }));
}

/**
 * containers/image's `dir:` serialization of a cosign signature: `\0sigstore-json\n` + JSON
 * `{mimeType, payload: base64, annotations}`.
 */
export function cosignLayerFromContainersImage(rel: string): CosignLayer {
  const bytes = readFixture(rel);
  const prefix = Buffer.from('\0sigstore-json\n');
  if (!bytes.subarray(0, prefix.length).equals(prefix)) {
    throw new Error(`${rel} is not a containers/image sigstore signature`);
  }
  const json = JSON.parse(bytes.subarray(prefix.length).toString('utf8')) as { payload: string; annotations: Record<string, string> };
  return { payload: Buffer.from(json.payload, 'base64'), annotations: json.annotations };
}
