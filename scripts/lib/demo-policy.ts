// The demo's identities and policy, shared by `npm run demo` (scripts/demo.ts) and the policy that
// docker-compose.yml mounts (deploy/demo/policy.yaml; a test keeps the two the same).

/** Alice signs keyless with an email identity, as `cosign sign` after a browser login does. */
export const DEMO_ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' } as const;

/** Bob has a valid certificate too, but the policy does not name him: his signature is a drift alert. */
export const DEMO_BOB = { email: 'bob@example.com', issuer: 'https://accounts.example.com' } as const;

const WORKFLOW = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0';

/** A GitHub Actions release workflow, with the Fulcio claims GitHub's OIDC token puts in the certificate. */
export const DEMO_WORKFLOW = {
  uri: WORKFLOW,
  issuer: 'https://token.actions.githubusercontent.com',
  claims: { 9: WORKFLOW, 12: 'https://github.com/acme/app', 13: 'a'.repeat(40), 14: 'refs/tags/v1.0.0', 20: 'push' },
} as const;

/**
 * The demo policy for the registry `host`: alice may sign anything under `demo/`, the release
 * workflow of acme/app signs `demo/release`, and `demo/keyed` takes signatures by `publicKeyPem`
 * (with or without a Rekor entry: `cosign sign --tlog-upload=false` works against it).
 */
export function demoPolicy(host: string, publicKeyPem: string): string {
  return [
    '# Signet demo policy (npm run demo writes the same one for its own registry).',
    'allow_with_verification:',
    `  ${JSON.stringify(host)}:`,
    '    demo/*:',
    `      certificate-identity: ${DEMO_ALICE.email}`,
    `      certificate-oidc-issuer: ${DEMO_ALICE.issuer}`,
    '    demo/release:',
    `      certificate-identity-regexp: 'https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*'`,
    `      certificate-oidc-issuer: ${DEMO_WORKFLOW.issuer}`,
    '      certificate-github-workflow-repository: acme/app',
    '    demo/keyed:',
    `      key: ${JSON.stringify(publicKeyPem.trim() + '\n')}`,
    '      insecure-ignore-tlog: true',
    '',
  ].join('\n');
}
