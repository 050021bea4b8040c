export const FULCIO_ARC = '1.3.6.1.4.1.57264.1.';

/**
 * Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md) by
 * the last arc of their OID. .1–.6 are the deprecated v1 extensions (raw string bytes); .8 onwards
 * are DER UTF8Strings.
 */
export const FULCIO_CLAIMS: Readonly<Record<number, string>> = {
  1: 'issuerV1',
  2: 'githubWorkflowTrigger',
  3: 'githubWorkflowSha',
  4: 'githubWorkflowName',
  5: 'githubWorkflowRepository',
  6: 'githubWorkflowRef',
  8: 'issuer',
  9: 'buildSignerUri',
  10: 'buildSignerDigest',
  11: 'runnerEnvironment',
  12: 'sourceRepositoryUri',
  13: 'sourceRepositoryDigest',
  14: 'sourceRepositoryRef',
  15: 'sourceRepositoryIdentifier',
  16: 'sourceRepositoryOwnerUri',
  17: 'sourceRepositoryOwnerIdentifier',
  18: 'buildConfigUri',
  19: 'buildConfigDigest',
  20: 'buildTrigger',
  21: 'runInvocationUri',
  22: 'sourceRepositoryVisibilityAtSigning',
};

const OID_BY_CLAIM: ReadonlyMap<string, string> = new Map(Object.entries(FULCIO_CLAIMS).map(([arc, name]) => [name, `${FULCIO_ARC}${arc}`]));

/** The dotted OID of a named Fulcio claim, e.g. `sourceRepositoryUri` → `1.3.6.1.4.1.57264.1.12`. */
export function fulcioClaimOid(name: string): string | null {
  return OID_BY_CLAIM.get(name) ?? null;
}
