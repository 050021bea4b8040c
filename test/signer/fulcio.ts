// A hand-made, Fulcio-shaped certificate authority for tests: root → intermediate (ECDSA P-384 /
// SHA-384, like public-good Fulcio) issuing short-lived P-256 leaves with an email or URI SAN, the
// Fulcio OIDC extensions and an embedded SCT from the @sigstore/mock CT log.
// @peculiar/x509 needs a Reflect metadata polyfill loaded before it. The mock's CT log module
// loads reflect-metadata (a dependency of @sigstore/mock, not of this project), so import it first.
import '@sigstore/mock/dist/fulcio/ctlog.js';
import type { CTLog } from '@sigstore/mock/dist/fulcio/ctlog.js';
import { randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { derLength } from '../../services/core/verification/der.ts';

/** Who a keyless certificate is issued to, as Fulcio would encode it from an OIDC token. */
export interface KeylessIdentity {
  /** Email SAN (e.g. `alice@example.com`). Exactly one of `email` / `uri`. */
  email?: string;
  /** URI SAN (e.g. `https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1`). */
  uri?: string;
  /** OIDC issuer, written to both 1.3.6.1.4.1.57264.1.1 (raw bytes) and .1.8 (DER UTF8String). */
  issuer: string;
  /**
   * Fulcio v2 extensions .1.9–.1.22 by OID suffix, values written as DER UTF8String,
   * e.g. `{12: 'https://github.com/org/repo', 14: 'refs/tags/v1'}`.
   */
  claims?: Record<number, string>;
}

/** A certificate in the two encodings callers need. */
export interface IssuedCertificate {
  readonly der: Buffer;
  readonly pem: string;
}

/** Root and intermediate of one test CA, plus leaf issuance. */
export interface FulcioCA {
  readonly root: IssuedCertificate;
  readonly intermediate: IssuedCertificate;
  /** Issues a leaf for `publicKey` (P-256) valid from `notBefore` for 10 minutes, with an SCT from `ctLog`. */
  issueLeaf(publicKey: CryptoKey, identity: KeylessIdentity, notBefore: Date): Promise<IssuedCertificate>;
}

// The Web Crypto global: its types are the ones @peculiar/x509 is written against.
const crypto = globalThis.crypto;
const P384_SHA384 = { name: 'ECDSA', hash: 'SHA-384' };
const P384 = { name: 'ECDSA', namedCurve: 'P-384' };

const OID_FULCIO = '1.3.6.1.4.1.57264.1';
const OID_SCT_LIST = '1.3.6.1.4.1.11129.2.4.2';
const CA_NOT_BEFORE = new Date('2020-01-01T00:00:00Z');
const CA_NOT_AFTER = new Date('2049-12-31T23:59:59Z');
const LEAF_LIFETIME_MS = 10 * 60 * 1000;

/** Creates an independent CA whose leaves carry SCTs signed by `ctLog`. */
export async function createFulcioCA(ctLog: CTLog): Promise<FulcioCA> {
  const rootKeys = await generateP384();
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: 'CN=signet-test-root,O=signet.test',
      notBefore: CA_NOT_BEFORE,
      notAfter: CA_NOT_AFTER,
      signingAlgorithm: P384_SHA384,
      keys: rootKeys,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.BasicConstraintsExtension(true, 1, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const intermediateKeys = await generateP384();
  const intermediateName = 'CN=signet-test-intermediate,O=signet.test';
  const intermediateCert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: intermediateName,
      issuer: rootCert.subject,
      notBefore: CA_NOT_BEFORE,
      notAfter: CA_NOT_AFTER,
      signingAlgorithm: P384_SHA384,
      publicKey: intermediateKeys.publicKey,
      signingKey: rootKeys.privateKey,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
        new x509.BasicConstraintsExtension(true, 0, true),
        await x509.SubjectKeyIdentifierExtension.create(intermediateKeys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  // RFC 6962 issuer_key_hash: sha256 of the issuing (intermediate) certificate's SPKI.
  const issuerKeyHash = await crypto.subtle.digest(
    'SHA-256',
    await crypto.subtle.exportKey('spki', intermediateKeys.publicKey),
  );

  return {
    root: toIssued(rootCert),
    intermediate: toIssued(intermediateCert),
    async issueLeaf(publicKey, identity, notBefore) {
      const params: x509.X509CertificateCreateWithKeyParams = {
        serialNumber: randomSerial(),
        subject: '', // Fulcio leaves have an empty subject; the identity lives in the SAN
        issuer: intermediateName,
        notBefore,
        notAfter: new Date(notBefore.getTime() + LEAF_LIFETIME_MS),
        signingAlgorithm: P384_SHA384,
        publicKey,
        signingKey: intermediateKeys.privateKey,
        extensions: [
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
          await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
          await x509.AuthorityKeyIdentifierExtension.create(intermediateKeys.publicKey, false, crypto),
          new x509.SubjectAlternativeNameExtension([subjectAltName(identity)], true),
          ...identityExtensions(identity),
        ],
      };
      // The SCT signs the precert TBS (RFC 6962 §3.2: the leaf's TBS without poison or SCT
      // extension), which verifiers rebuild by deleting the SCT extension from the final leaf. So
      // a poison-free pre-certificate with the same serial, dates and extensions in the same order
      // gives exactly those bytes, and the SCT extension must be appended last.
      const preCert = await x509.X509CertificateGenerator.create(params, crypto);
      const sct = Buffer.from(await ctLog.log(preCert.rawData, issuerKeyHash));
      params.extensions = [...(params.extensions ?? []), sctListExtension(sct)];
      return toIssued(await x509.X509CertificateGenerator.create(params, crypto));
    },
  };
}

/**
 * Encodes a certificate as PEM exactly as Go's `pem.EncodeToMemory` (used by cosign) does:
 * 64-column base64 lines, LF line endings, trailing newline.
 */
export function toPem(der: Uint8Array, type: 'CERTIFICATE' | 'PUBLIC KEY'): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

/** DER UTF8String (tag 0x0c), the encoding Fulcio uses for its v2 extensions (.1.8 and later). */
export function derUtf8String(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  return Buffer.concat([Buffer.from([0x0c]), derLength(bytes.length), bytes]);
}

function subjectAltName(identity: KeylessIdentity): x509.JsonGeneralName {
  if ((identity.email === undefined) === (identity.uri === undefined)) {
    throw new TypeError('KeylessIdentity needs exactly one of email or uri');
  }
  return identity.email !== undefined ? { type: 'email', value: identity.email } : { type: 'url', value: identity.uri! };
}

function identityExtensions(identity: KeylessIdentity): x509.Extension[] {
  const extensions = [
    // .1.1 is the deprecated v1 issuer extension: the raw string bytes, no ASN.1 wrapper.
    new x509.Extension(`${OID_FULCIO}.1`, false, new Uint8Array(Buffer.from(identity.issuer, 'utf8'))),
    new x509.Extension(`${OID_FULCIO}.8`, false, new Uint8Array(derUtf8String(identity.issuer))),
  ];
  const claims = Object.entries(identity.claims ?? {})
    .map(([suffix, value]) => [Number(suffix), value] as const)
    .sort(([a], [b]) => a - b);
  for (const [suffix, value] of claims) {
    if (!Number.isInteger(suffix) || suffix < 9 || suffix > 22) {
      throw new RangeError(`claims: OID suffix ${suffix} is not a Fulcio v2 extension (.9–.22)`);
    }
    extensions.push(new x509.Extension(`${OID_FULCIO}.${suffix}`, false, new Uint8Array(derUtf8String(value))));
  }
  return extensions;
}

// The CTLog returns one serialized SCT already prefixed with its own u16 length (pkijs
// `toStream()`), so the SignedCertificateTimestampList is u16 listLength ‖ that, wrapped in an
// OCTET STRING (RFC 6962 §3.3). The mock CA writes listLength as two bytes [0, len], which breaks
// above 255 bytes; a proper big-endian u16 is used here.
function sctListExtension(sct: Buffer): x509.Extension {
  const list = Buffer.alloc(2 + sct.length);
  list.writeUInt16BE(sct.length, 0);
  sct.copy(list, 2);
  const octetString = Buffer.concat([Buffer.from([0x04]), derLength(list.length), list]);
  return new x509.Extension(OID_SCT_LIST, false, octetString);
}

async function generateP384(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(P384, true, ['sign', 'verify']);
}

/** 20 random bytes with the top bit cleared, so the DER INTEGER stays positive and 20 bytes long. */
function randomSerial(): string {
  const bytes = randomBytes(20);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function toIssued(cert: x509.X509Certificate): IssuedCertificate {
  const der = Buffer.from(cert.rawData);
  return { der, pem: toPem(der, 'CERTIFICATE') };
}
