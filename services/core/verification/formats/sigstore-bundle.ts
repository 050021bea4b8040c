import { X509Certificate } from 'node:crypto';
import type { Bundle, Envelope, MessageSignature, TransparencyLogEntry } from '@sigstore/bundle';
import { RFC3161Timestamp } from '@sigstore/core';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import type { Digest } from '../../../common/domain/digest.ts';
import type { SignatureVerdict } from '../../../common/domain/signature.ts';
import { parseBundle, parseStatement, signedEntity, tlogEntryKeys } from '../bundle.ts';
import { MalformedSignatureError } from '../cosign-layer.ts';
import type { Evidence } from '../evidence.ts';
import { Failure } from '../failure.ts';
import type { NormalisedSignature } from '../normalised.ts';

/**
 * What a bundle is checked against: the artifact's digest (`sha256:<hex>` for images; another
 * algorithm only binds DSSE statements), and its bytes (the manifest) for message signatures.
 */
export interface BundleSubject {
  readonly digest: Digest | `${string}:${string}`;
  readonly bytes?: Buffer;
}

type Content = Pick<NormalisedSignature, 'entity' | 'binding'>;

/**
 * Reads a serialized Sigstore bundle (v0.1–v0.3) attached to `subject`: its log entries, TSA
 * time, certificate or key, and its content, a DSSE in-toto statement or a message signature.
 */
export function normaliseBundle(bytes: Uint8Array, subject: BundleSubject, evidence: Evidence): NormalisedSignature {
  const bundle = parseBundle(bytes);
  const [entry] = bundle.verificationMaterial.tlogEntries;
  const rekor = entry === undefined ? null : tlogSummary(entry);
  evidence.tsaTime = tsaTime(bundle);
  evidence.rekor = rekor;
  const material = bundle.verificationMaterial.content;
  const cert = signingCertificate(material);
  const { entity, binding } =
    bundle.content.$case === 'dsseEnvelope'
      ? readDsse(bundle, bundle.content.dsseEnvelope, subject, evidence)
      : readMessageSignature(bundle, bundle.content.messageSignature, subject);
  const keys = bundle.verificationMaterial.tlogEntries.flatMap((e) => tlogEntryKeys(e));
  const normalised: NormalisedSignature = {
    entity,
    certificate: cert,
    keyHint: material.$case === 'publicKey' ? (material.publicKey.hint ?? null) : null,
    // Entries whose bodies name no key Signet reads hold the signer to nothing.
    loggedKeys: keys.length > 0 ? keys : null,
    binding,
  };
  if (cert !== null) {
    evidence.showCertificate(cert);
    if (material.$case === 'x509CertificateChain') {
      assertOrderedChain(material.x509CertificateChain.certificates.map((c) => c.rawBytes));
    }
  }
  return normalised;
}

/** The leaf certificate; parsed before sigstore sees it, so garbage gets a plain reason. */
function signingCertificate(material: Bundle['verificationMaterial']['content']): X509Certificate | null {
  if (material.$case === 'publicKey') {
    return null;
  }
  const raw = material.$case === 'certificate' ? material.certificate.rawBytes : material.x509CertificateChain.certificates[0]?.rawBytes;
  return parseCertificateDer(raw ?? Buffer.alloc(0));
}

/** A DSSE envelope: one signature over an in-toto statement, which must name the subject. */
function readDsse(bundle: Bundle, envelope: Envelope, subject: BundleSubject, evidence: Evidence): Content {
  if (envelope.signatures.length !== 1) {
    throw new Failure('malformed', `the DSSE envelope has ${envelope.signatures.length} signatures; exactly one is required`);
  }
  const statement = parseStatement(envelope.payloadType, envelope.payload);
  evidence.showStatement(statement);
  return { entity: signedEntity(bundle), binding: { kind: 'statement', statement, subject: subject.digest } };
}

/** A message signature over the subject's bytes: its digest must be the subject's. */
function readMessageSignature(bundle: Bundle, signature: MessageSignature, subject: BundleSubject): Content {
  const { messageDigest } = signature;
  if (messageDigest === undefined || messageDigest.algorithm !== HashAlgorithm.SHA2_256 || messageDigest.digest.toString('hex') !== subject.digest.slice(7)) {
    throw new Failure('digest_mismatch', `the bundle's message digest is not ${subject.digest} (signature made for another artifact)`);
  }
  if (subject.bytes === undefined) {
    throw new Failure('malformed', 'a message-signature bundle needs the signed bytes to verify');
  }
  return { entity: signedEntity(bundle, subject.bytes), binding: { kind: 'message' } };
}

function parseCertificateDer(raw: Buffer): X509Certificate {
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
function assertOrderedChain(raws: readonly Buffer[]): void {
  const certs = raws.map((r) => parseCertificateDer(r));
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new Failure('cert_invalid', `the bundle's certificate chain is out of order: certificate ${i + 1} was not issued by certificate ${i + 2}`);
    }
  }
}

function tlogSummary(entry: TransparencyLogEntry): NonNullable<SignatureVerdict['rekor']> {
  const seconds = Number(entry.integratedTime);
  return {
    logId: entry.logId.keyId.toString('hex'),
    logIndex: String(entry.logIndex),
    // Rekor v2 entries carry no integrated time: the time comes from a TSA.
    integratedTime: seconds > 0 ? new Date(seconds * 1000) : null,
  };
}

function tsaTime(bundle: Bundle): Date | null {
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
