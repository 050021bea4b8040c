import { X509Certificate } from 'node:crypto';
import type { Bundle, TransparencyLogEntry } from '@sigstore/bundle';
import { RFC3161Timestamp } from '@sigstore/core';
import type { SignatureVerdict } from '../../../common/domain/signature.ts';
import { MalformedSignatureError } from '../cosign-layer.ts';
import { Failure } from '../failure.ts';

export function parseCertificateDer(raw: Buffer): X509Certificate {
  if (raw.length === 0) {
    throw new MalformedSignatureError('the bundle has no certificate (empty certificate chain)');
  }
  try {
    return new X509Certificate(raw);
  } catch (err) {
    throw new MalformedSignatureError('the bundle certificate is not a DER X.509 certificate', { cause: err });
  }
}

/**
 * Only the leaf of a bundle's chain is used: trust comes from the trusted root. The rest must
 * still be a chain, each certificate issued by the next (sigstore-go accepts a well-ordered chain
 * that ends in its root; a root placed out of order is the conformance suite's rejected case).
 */
export function assertOrderedChain(raws: readonly Buffer[]): void {
  const certs = raws.map((r) => parseCertificateDer(r));
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new Failure('cert_invalid', `the bundle's certificate chain is out of order: certificate ${i + 1} was not issued by certificate ${i + 2}`);
    }
  }
}

export function tlogSummary(entry: TransparencyLogEntry): NonNullable<SignatureVerdict['rekor']> {
  const seconds = Number(entry.integratedTime);
  return {
    logId: entry.logId.keyId.toString('hex'),
    logIndex: String(entry.logIndex),
    // Rekor v2 entries carry no integrated time: the time comes from a TSA.
    integratedTime: seconds > 0 ? new Date(seconds * 1000) : null,
  };
}

export function tsaTime(bundle: Bundle): Date | null {
  const ts = bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps[0];
  if (ts === undefined) {
    return null;
  }
  try {
    return RFC3161Timestamp.parse(Buffer.from(ts.signedTimestamp)).signingTime;
  } catch {
    return null;
  }
}
