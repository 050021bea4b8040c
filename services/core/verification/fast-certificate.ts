import type { KeyObject } from 'node:crypto';
import { type ASN1Obj, crypto, EXTENSION_OID_SCT, type X509Certificate, X509SCTExtension } from '@sigstore/core';
import type { Signer, TrustMaterial } from '@sigstore/verify';
import { derLength } from './der.ts';

type CertAuthority = TrustMaterial['certificateAuthorities'][number];
type CtLog = TrustMaterial['ctlogs'][number];

const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

/** How often the fast path answered, and how often it left the step to sigstore-js. */
export interface FastPathStats {
  hits: number;
  fallbacks: number;
}

/**
 * A CA of the trusted root whose chain was proven once, when the root was loaded: a linear chain,
 * each certificate issued (by sigstore's own issuer rule and signature check) by the next and only
 * by it, ending in a self-signed root, every certificate a CA within its path length. A leaf
 * issued by the chain's first certificate then has exactly one path in sigstore-js: the leaf
 * followed by the chain. Null when the chain is anything else: then sigstore-js decides.
 */
interface ProvenChain {
  readonly certs: readonly X509Certificate[];
  /** The issuing certificate's key, made once. */
  readonly issuerKey: KeyObject;
  /** sha256 of the issuing certificate's SubjectPublicKeyInfo: the SCT's issuer key hash. */
  readonly issuerKeyHash: Buffer;
  /** Each certificate's DER content, to tell a leaf that is one of them. */
  readonly contents: readonly Buffer[];
  readonly validity: readonly { readonly notBefore: Date; readonly notAfter: Date }[];
}

/**
 * The certificate step of `@sigstore/verify`'s `Verifier.verify` (path to a trusted CA at every
 * verified time, SCTs, signer identity) without its per-signature costs: the trusted chain is
 * proven once per root instead of once per signature, and the leaf's own bytes are read where
 * sigstore-js re-encodes its whole parse tree for every comparison and signature check.
 *
 * It computes what sigstore-js computes, from the same parsed leaf and the same trust material,
 * and answers only when it is sure sigstore-js would verify and return this signer; in every
 * other case — anything unexpected in the leaf or the chain, any check that fails — it answers
 * null, and sigstore-js's own step runs and decides (with its own error). So it can make a
 * verification faster, never make one pass that sigstore-js would fail.
 */
export class FastCertificateStep {
  readonly stats: FastPathStats = { hits: 0, fallbacks: 0 };
  readonly #authorities: readonly { readonly authority: CertAuthority; readonly chain: ProvenChain | null }[];
  readonly #ctlogs: readonly CtLog[];
  readonly #ctlogThreshold: number;
  /** The caller's parse of the leaf being verified (see {@link withLeaf}). */
  #leaf: { readonly der: Buffer; readonly key: KeyObject } | null = null;

  constructor(material: TrustMaterial, ctlogThreshold: number) {
    this.#authorities = material.certificateAuthorities.map((authority) => ({ authority, chain: proveChain(authority) }));
    this.#ctlogs = material.ctlogs;
    this.#ctlogThreshold = ctlogThreshold;
  }

  /**
   * Runs `verify` knowing the caller's own parse of the leaf (node:crypto): when it is the same
   * certificate sigstore-js parsed, its key object is used instead of making another one.
   */
  withLeaf<T>(leaf: { readonly raw: Buffer; readonly publicKey: KeyObject }, verify: () => T): T {
    this.#leaf = { der: leaf.raw, key: leaf.publicKey };
    try {
      return verify();
    } finally {
      this.#leaf = null;
    }
  }

  /** The signer sigstore-js would return for `leaf` at `timestamps`, or null to let sigstore-js decide. */
  signer(leaf: X509Certificate, timestamps: readonly Date[]): Signer | null {
    let signer: Signer | null;
    try {
      signer = this.#verify(leaf, timestamps);
    } catch {
      signer = null; // whatever threw here, sigstore-js's step throws or decides on its own
    }
    if (signer === null) {
      this.stats.fallbacks++;
    } else {
      this.stats.hits++;
    }
    return signer;
  }

  #verify(leaf: X509Certificate, timestamps: readonly Date[]): Signer | null {
    if (timestamps.length === 0 || leaf.subject.equals(leaf.issuer) || issuersOf(leaf, [leaf]).length > 0) {
      return null; // a self-issued leaf, or one that names itself as its issuer: sigstore's general search
    }
    let issuer: ProvenChain | null = null;
    const tbs = tlv(leaf.root.subs[0]!);
    for (const at of timestamps) {
      issuer = this.#pathAt(leaf, tbs, at);
      if (issuer === null) {
        return null;
      }
    }
    const scts = this.#verifiedScts(leaf, issuer!);
    if (scts === null || scts < this.#ctlogThreshold) {
      return null;
    }
    const known = this.#leaf;
    return signerOf(leaf, known !== null && sameCertificate(known.der, leaf) ? known.key : null);
  }

  /**
   * The CA sigstore-js's `verifyCertificateChain` would verify `leaf` with at `at`: the first one
   * valid then whose path succeeds. Null when none does, or when a CA's outcome is not certain.
   */
  #pathAt(leaf: X509Certificate, tbs: Buffer, at: Date): ProvenChain | null {
    for (const { authority, chain } of this.#authorities) {
      if (!(authority.validFor.start <= at && authority.validFor.end >= at)) {
        continue; // filtered out by filterCertAuthorities
      }
      if (chain === null) {
        return null;
      }
      const verdict = pathThrough(chain, leaf, tbs, at);
      if (verdict === 'verified') {
        return chain;
      }
      if (verdict === 'unsure') {
        return null;
      }
      // 'fails': sigstore-js catches the error and tries the next CA
    }
    return null;
  }

  /** sigstore-js's `verifySCTs` and its duplicate check: the number of verified SCTs, or null when unsure or failing. */
  #verifiedScts(leaf: X509Certificate, chain: ProvenChain): number | null {
    const precert = precertificate(leaf);
    if (precert === null) {
      return null;
    }
    const data = Buffer.concat([chain.issuerKeyHash, uint24(precert.tbs.length), precert.tbs]);
    const scts = precert.extension.signedCertificateTimestamps;
    if (scts.length === 0) {
      return null;
    }
    const seen = new Set<string>();
    for (const sct of scts) {
      const id = sct.logID.toString('hex');
      if (seen.has(id)) {
        return null; // a duplicate SCT is an error there
      }
      seen.add(id);
      const when = sct.datetime;
      const logs = this.#ctlogs.filter((log) => log.logID.equals(sct.logID) && log.validFor.start <= when && when <= log.validFor.end);
      if (!logs.some((log) => sct.verify(data, log.publicKey))) {
        return null;
      }
    }
    return scts.length;
  }
}

type PathVerdict = 'verified' | 'fails' | 'unsure';

/** sigstore-js's `CertificateChainVerifier` for `leaf` against one proven chain, at `at`. */
function pathThrough(chain: ProvenChain, leaf: X509Certificate, tbs: Buffer, at: Date): PathVerdict {
  const content = leaf.root.value;
  if (chain.contents.some((c) => c.equals(content))) {
    return 'unsure'; // the leaf is one of the trusted certificates (deduplicated there)
  }
  // The leaf is in the pool sigstore searches for each chain certificate's issuer (the root stops early: it is self-signed).
  if (chain.certs.slice(0, -1).some((c) => issuersOf(c, [leaf]).length > 0)) {
    return 'unsure';
  }
  const candidates = issuersOf(leaf, chain.certs);
  if (candidates.length === 0) {
    return 'fails'; // no valid certificate path found
  }
  if (candidates.length !== 1 || candidates[0] !== chain.certs[0]) {
    return 'unsure';
  }
  if (!crypto.verify(tbs, chain.issuerKey, leaf.signatureValue, leaf.signatureAlgorithm)) {
    return 'fails';
  }
  if (!leaf.issuer.equals(chain.certs[0]!.subject)) {
    return 'fails'; // incorrect certificate name chaining
  }
  const valid = leaf.notBefore <= at && at <= leaf.notAfter && chain.validity.every((v) => v.notBefore <= at && at <= v.notAfter);
  return valid ? 'verified' : 'fails';
}

/**
 * The certificates of `pool` sigstore-js's `findIssuer` would consider for `cert`, before the
 * signature check: by authority/subject key identifier, else by issuer/subject name.
 */
function issuersOf(cert: X509Certificate, pool: readonly X509Certificate[]): X509Certificate[] {
  const keyId = cert.extAuthorityKeyID?.keyIdentifier;
  return pool.filter((p) => {
    if (keyId !== undefined) {
      const ski = p.extSubjectKeyID;
      if (ski !== undefined) {
        return ski.keyIdentifier.equals(keyId);
      }
    }
    return p.subject.equals(cert.issuer);
  });
}

/** Proves a CA's chain once (see {@link ProvenChain}); null when sigstore-js must judge its paths itself. */
function proveChain(authority: CertAuthority): ProvenChain | null {
  try {
    const certs = authority.certChain;
    const n = certs.length;
    const root = certs[n - 1];
    if (root === undefined || !root.subject.equals(root.issuer) || !root.verify()) {
      return null;
    }
    const contents = certs.map((c) => c.root.value);
    if (contents.some((c, i) => contents.findIndex((o) => o.equals(c)) !== i)) {
      return null;
    }
    for (let i = 0; i < n; i++) {
      const cert = certs[i]!;
      if (!cert.isCA) {
        return null;
      }
      const pathLen = cert.extBasicConstraints?.isCA === true ? cert.extBasicConstraints.pathLenConstraint : undefined;
      if (pathLen !== undefined && pathLen < i) {
        return null; // in a path its index is i + 1, under the leaf
      }
      if (i < n - 1) {
        const next = certs[i + 1]!;
        const issuers = issuersOf(cert, certs).filter((c) => cert.verify(c));
        if (cert.subject.equals(cert.issuer) || issuers.length !== 1 || issuers[0] !== next || !cert.issuer.equals(next.subject)) {
          return null;
        }
      }
    }
    const spki = certs[0]!.publicKey;
    return {
      certs,
      issuerKey: crypto.createPublicKey(spki),
      issuerKeyHash: crypto.digest('sha256', spki),
      contents,
      validity: certs.map((c) => ({ notBefore: c.notBefore, notAfter: c.notAfter })),
    };
  } catch {
    return null;
  }
}

/**
 * The leaf's TBSCertificate without its SCT extension, as sigstore-js's `verifySCTs` re-encodes it
 * (its parser accepts strict DER only, so re-encoding the untouched parts gives their bytes back),
 * and that extension. Null when sigstore-js would find none, or its re-encoding would differ.
 */
function precertificate(leaf: X509Certificate): { tbs: Buffer; extension: X509SCTExtension } | null {
  const tbs = leaf.root.subs[0]!;
  const at = tbs.subs.findIndex((s) => s.tag.isContextSpecific(0x03));
  const wrapper = tbs.subs[at];
  const list = wrapper?.subs[0];
  if (wrapper === undefined || list === undefined || wrapper.subs.length !== 1) {
    return null;
  }
  const index = list.subs.findIndex((ext) => ext.subs[0]!.toOID() === EXTENSION_OID_SCT);
  const rest = list.subs.filter((_, i) => i !== index);
  if (index === -1 || rest.length === 0) {
    return null; // with no extension left, sigstore-js would re-encode the original bytes
  }
  const extensions = wrap(list, Buffer.concat(rest.map(tlv)));
  const content = Buffer.concat(tbs.subs.map((s, i) => (i === at ? wrap(wrapper, extensions) : tlv(s))));
  return { tbs: wrap(tbs, content), extension: new X509SCTExtension(list.subs[index]!) };
}

/** sigstore-js's `getSigner`, on the same parsed leaf; `key` is the leaf's key when the caller has it already. */
function signerOf(cert: X509Certificate, key: KeyObject | null): Signer {
  let issuer: string | undefined;
  const v2 = cert.extension(OID_FULCIO_ISSUER_V2);
  if (v2 !== undefined) {
    issuer = v2.valueObj.subs[0]?.value.toString('ascii');
  } else {
    issuer = cert.extension(OID_FULCIO_ISSUER_V1)?.value.toString('ascii');
  }
  const oids = cert.extensions.map((ext) => ({
    oid: { id: ext.subs[0]!.toOID().split('.').map(Number) },
    value: ext.subs[ext.subs.length - 1]!.value,
  }));
  return {
    key: key ?? crypto.createPublicKey(tlv(cert.root.subs[0]!.subs[6]!)), // the SubjectPublicKeyInfo, as cert.publicKey re-encodes it
    identity: { extensions: { issuer }, subjectAlternativeName: cert.subjectAltName, oids },
  };
}

/** Whether `der` is the certificate sigstore-js parsed: its content is a view of the bytes parsed, under the same header. */
function sameCertificate(der: Buffer, leaf: X509Certificate): boolean {
  const { tag, value: content } = leaf.root;
  const length = derLength(content.length);
  return (
    tag.class === 0 &&
    tag.constructed &&
    tag.number === 0x10 &&
    der.length === 1 + length.length + content.length &&
    der[0] === 0x30 &&
    der.subarray(1, 1 + length.length).equals(length) &&
    der.subarray(1 + length.length).equals(content)
  );
}

/** The DER bytes of a parsed object: its parser keeps each object's content, a view of the input. */
function tlv(obj: ASN1Obj): Buffer {
  return wrap(obj, obj.value);
}

function wrap(obj: ASN1Obj, content: Buffer): Buffer {
  const tag = obj.tag.number | (obj.tag.constructed ? 0x20 : 0) | (obj.tag.class << 6);
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

function uint24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}
