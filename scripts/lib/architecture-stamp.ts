import { createHash } from 'node:crypto';

/** The comment docs/architecture.svg carries: which source text it was rendered from. */
export function architectureStamp(source: string): string {
  return `<!-- rendered from docs/architecture.dot sha256:${createHash('sha256').update(source).digest('hex')} by npm run docs:architecture -->`;
}
