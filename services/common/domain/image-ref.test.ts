import { describe, expect, it } from 'vitest';
import { formatImageReference, ImageReferenceError, parseImageReference } from './image-ref.ts';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['library/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/library/nginx', 'docker.io/library/nginx:latest'],
    ['registry-1.docker.io/bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['bitnami/redis', 'docker.io/bitnami/redis:latest'],
    ['GHCR.io/acme/app:v1', 'ghcr.io/acme/app:v1'],
    ['localhost/app', 'localhost/app:latest'],
    ['127.0.0.1:5000/team/app:v2', '127.0.0.1:5000/team/app:v2'],
    [`quay.io/org/app@${D}`, `quay.io/org/app@${D}`],
    [`quay.io/org/app:v1@${D}`, `quay.io/org/app:v1@${D}`],
    ['registry.example.com:443/a/b/c', 'registry.example.com:443/a/b/c:latest'],
  ])('%s → %s', (ref, want) => {
    expect(formatImageReference(parseImageReference(ref))).toBe(want);
  });

  it.each(['', 'Nginx', 'nginx:', 'nginx@sha256:abc', `nginx@sha512:${'a'.repeat(128)}`, 'a b', 'docker.io/../etc', 'x:bad tag'])(
    'rejects %j',
    (ref) => {
      expect(() => parseImageReference(ref)).toThrow(ImageReferenceError);
    },
  );
});
