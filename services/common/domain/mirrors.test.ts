import { describe, expect, it } from 'vitest';
import type { Digest } from './digest.ts';
import { toSource } from './mirrors.ts';

const digest = `sha256:${'a'.repeat(64)}` as Digest;
const MIRRORS = [
  { host: 'mirror.example', source: 'docker.io', prefix: 'hub' },
  { host: 'mirror.example', source: 'ghcr.io', prefix: 'gh/cache' },
  { host: 'plain.example', source: 'quay.io', prefix: '' },
];

describe('toSource', () => {
  it('maps a reference by digest under a prefix to the source registry and path', () => {
    expect(toSource({ registry: 'mirror.example', repository: 'hub/library/nginx', tag: null, digest }, MIRRORS)).toEqual({ registry: 'docker.io', repository: 'library/nginx', tag: null, digest });
    expect(toSource({ registry: 'mirror.example', repository: 'gh/cache/acme/app', tag: 'v1', digest }, MIRRORS)).toEqual({ registry: 'ghcr.io', repository: 'acme/app', tag: 'v1', digest });
    expect(toSource({ registry: 'plain.example', repository: 'org/app', tag: null, digest }, MIRRORS)).toMatchObject({ registry: 'quay.io', repository: 'org/app' });
  });

  it('leaves tags, other paths and other registries alone', () => {
    const byTag = { registry: 'mirror.example', repository: 'hub/library/nginx', tag: 'latest', digest: null };
    expect(toSource(byTag, MIRRORS)).toBe(byTag);
    const outside = { registry: 'mirror.example', repository: 'hubx/library/nginx', tag: null, digest };
    expect(toSource(outside, MIRRORS)).toBe(outside);
    const other = { registry: 'docker.io', repository: 'hub/x', tag: null, digest };
    expect(toSource(other, MIRRORS)).toBe(other);
  });
});
