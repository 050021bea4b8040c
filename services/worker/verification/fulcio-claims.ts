import { ASN1Obj } from '@sigstore/core';
import type { ObjectIdentifierValuePair } from '@sigstore/protobuf-specs';

const FULCIO_ARC = '1.3.6.1.4.1.57264.1.';

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

const UTF8_STRING_TAG = 0x0c;

/** Decodes the Fulcio extensions among a verified signer's OIDs into named claims. */
export function decodeFulcioClaims(oids: readonly ObjectIdentifierValuePair[] | undefined): Record<string, string> {
  const claims: Record<string, string> = {};
  for (const { oid, value } of oids ?? []) {
    const dotted = oid?.id.join('.') ?? '';
    if (!dotted.startsWith(FULCIO_ARC)) {
      continue;
    }
    const arc = Number(dotted.slice(FULCIO_ARC.length));
    const name = FULCIO_CLAIMS[arc];
    if (name === undefined) {
      continue;
    }
    claims[name] = arc >= 8 ? decodeUtf8String(Buffer.from(value)) : Buffer.from(value).toString('utf8');
  }
  return claims;
}

function decodeUtf8String(der: Buffer<ArrayBuffer>): string {
  try {
    const obj = ASN1Obj.parseBuffer(der);
    if (obj.tag.number === UTF8_STRING_TAG) {
      return obj.value.toString('utf8');
    }
  } catch {
    // not DER: fall through to the raw bytes, as some early Fulcio certificates wrote them
  }
  return der.toString('utf8');
}
