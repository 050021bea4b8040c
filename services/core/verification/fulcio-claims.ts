import { ASN1Obj } from '@sigstore/core';
import type { ObjectIdentifierValuePair } from '@sigstore/protobuf-specs';
import { FULCIO_ARC, FULCIO_CLAIMS } from '../../common/domain/fulcio.ts';

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
