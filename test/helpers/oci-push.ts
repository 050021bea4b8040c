/**
 * Pushes blobs, manifests, images and indexes to a registry over the distribution API, for tests.
 * Uses plain fetch; `auth` sends Basic credentials (an htpasswd-protected {@link startRegistry}).
 */
import { randomBytes } from 'node:crypto';
import { sha256Digest, type Digest } from '../../services/common/domain/digest.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface PushOptions {
  readonly auth?: { readonly username: string; readonly password: string };
  /** A Bearer token to send instead (a token-auth registry: see test/helpers/token-server.ts). */
  readonly bearer?: string;
}

export interface OciDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
  artifactType?: string;
}

export interface PushedImage {
  readonly digest: Digest;
  /** The manifest exactly as pushed. */
  readonly bytes: Buffer;
  readonly manifest: { schemaVersion: 2; mediaType: string; config: OciDescriptor; layers: OciDescriptor[] };
  readonly config: { readonly digest: Digest; readonly bytes: Buffer };
  readonly layer: { readonly digest: Digest; readonly bytes: Buffer };
}

export interface PushedIndex {
  readonly digest: Digest;
  readonly bytes: Buffer;
  readonly index: { schemaVersion: 2; mediaType: string; manifests: OciDescriptor[] };
  readonly images: readonly PushedImage[];
}

function headers(opts: PushOptions | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const h = { ...extra };
  if (opts?.auth !== undefined) {
    h.authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  } else if (opts?.bearer !== undefined) {
    h.authorization = `Bearer ${opts.bearer}`;
  }
  return h;
}

async function expectStatus(res: Response, expected: number, what: string): Promise<void> {
  if (res.status !== expected) {
    const text = await res.text().catch(() => '');
    throw new Error(`${what}: expected HTTP ${expected}, got ${res.status}: ${text.slice(0, 500)}`);
  }
}

/** Monolithic upload: POST /v2/<repo>/blobs/uploads/, then PUT <Location>&digest=… with the bytes. */
export async function pushBlob(registryUrl: string, repo: string, bytes: Uint8Array, opts?: PushOptions): Promise<Digest> {
  const digest = sha256Digest(bytes);
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: headers(opts) });
  await expectStatus(start, 202, `start blob upload to ${repo}`);
  await start.body?.cancel();
  const location = start.headers.get('location');
  if (location === null) {
    throw new Error(`start blob upload to ${repo}: no Location header`);
  }
  const put = new URL(location, registryUrl);
  put.searchParams.set('digest', digest);
  const res = await fetch(put, {
    method: 'PUT',
    headers: headers(opts, { 'content-type': 'application/octet-stream' }),
    body: new Uint8Array(bytes),
  });
  await expectStatus(res, 201, `upload blob ${digest} to ${repo}`);
  await res.body?.cancel();
  return digest;
}

/** PUT /v2/<repo>/manifests/<reference>; returns the sha256 of the bytes sent (checked against Docker-Content-Digest). */
export async function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  body: Buffer | object,
  mediaType: string,
  opts?: PushOptions,
): Promise<Digest> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const digest = sha256Digest(bytes);
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: headers(opts, { 'content-type': mediaType }),
    body: new Uint8Array(bytes),
  });
  await expectStatus(res, 201, `push manifest ${repo}:${reference}`);
  await res.body?.cancel();
  const served = res.headers.get('docker-content-digest');
  if (served !== null && served !== digest) {
    throw new Error(`push manifest ${repo}:${reference}: registry says ${served}, sent ${digest}`);
  }
  return digest;
}

/**
 * Pushes a random OCI image (a config blob and one random layer) and its manifest under `tag`,
 * or by digest only when `tag` is null.
 */
export async function pushRandomImage(
  registryUrl: string,
  repo: string,
  tag: string | null,
  opts?: PushOptions & { readonly platform?: { os: string; architecture: string; variant?: string } },
): Promise<PushedImage> {
  const platform = opts?.platform ?? { os: 'linux', architecture: 'amd64' };
  const layerBytes = randomBytes(1024);
  const layerDigest = await pushBlob(registryUrl, repo, layerBytes, opts);
  const configBytes = Buffer.from(
    JSON.stringify({
      ...platform,
      created: new Date(0).toISOString(),
      config: { Labels: { 'test.nonce': randomBytes(8).toString('hex') } },
      rootfs: { type: 'layers', diff_ids: [sha256Digest(randomBytes(16))] },
    }),
  );
  const configDigest = await pushBlob(registryUrl, repo, configBytes, opts);
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: layerBytes.length }],
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = await pushManifest(registryUrl, repo, tag ?? sha256Digest(bytes), bytes, OCI_MANIFEST, opts);
  return {
    digest,
    bytes,
    manifest,
    config: { digest: configDigest, bytes: configBytes },
    layer: { digest: layerDigest, bytes: layerBytes },
  };
}

/** Pushes two random images (linux/amd64, linux/arm64/v8) by digest and an OCI index of them under `tag`. */
export async function pushIndex(registryUrl: string, repo: string, tag: string, opts?: PushOptions): Promise<PushedIndex> {
  const platforms = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ];
  const images: PushedImage[] = [];
  for (const platform of platforms) {
    images.push(await pushRandomImage(registryUrl, repo, null, { ...opts, platform }));
  }
  const index = {
    schemaVersion: 2 as const,
    mediaType: OCI_INDEX,
    manifests: images.map((img, i) => ({
      mediaType: OCI_MANIFEST,
      digest: img.digest,
      size: img.bytes.length,
      platform: platforms[i],
    })),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  const digest = await pushManifest(registryUrl, repo, tag, bytes, OCI_INDEX, opts);
  return { digest, bytes, index, images };
}
