// The architecture picture is generated (npm run docs:architecture): the committed SVG must be
// the rendering of the committed source, and the README must show it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { architectureStamp } from '../scripts/lib/architecture-stamp.ts';

const read = (rel: string) => readFileSync(new URL(`../${rel}`, import.meta.url), 'utf8');

describe('docs/architecture.svg', () => {
  it('was rendered from docs/architecture.dot as it is now (else: npm run docs:architecture)', () => {
    const svg = read('docs/architecture.svg');
    expect(svg).toContain(architectureStamp(read('docs/architecture.dot')));
    expect(svg).toMatch(/<svg[\s\S]*<\/svg>\s*$/);
  });

  it('is in the README', () => {
    expect(read('README.md')).toContain('](docs/architecture.svg)');
  });
});
