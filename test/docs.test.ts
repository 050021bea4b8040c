// The architecture picture is generated (npm run docs:architecture): the committed SVG must be
// the rendering of the committed source, and the README must show it. The registry configuration
// the README recommends is the one the tests run.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { architectureStamp } from '../scripts/lib/architecture-stamp.ts';
import { RECOMMENDED_IGNORE } from './helpers/registry.ts';

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

describe('the registry configuration the README recommends', () => {
  // What the tests' registries use (test/helpers/registry.ts), the README shows and docker-compose runs.
  const notifications = (yaml: string) => (parse(yaml) as { notifications: { endpoints: { ignore?: unknown }[] } }).notifications.endpoints[0]?.ignore;
  const expected = { mediatypes: [...RECOMMENDED_IGNORE.mediaTypes], actions: [...RECOMMENDED_IGNORE.actions] };

  it('leaves out blob events and pulls, in the README and in deploy/registry-config.yml', () => {
    const block = /```yaml\n(notifications:\n[\s\S]*?)```/.exec(read('README.md'))?.[1];
    expect(block).toBeDefined();
    expect(notifications(block!)).toEqual(expected);
    expect(notifications(read('deploy/registry-config.yml'))).toEqual(expected);
  });
});
