import { readFileSync } from 'node:fs';

let version: string | undefined;

/** The version of the package this checkout or image is (package.json's `version`). */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return version;
}
