import type { KeyObject, X509Certificate } from 'node:crypto';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { toSignedEntity, type SignedEntity } from '@sigstore/verify';
import type { Digest } from '../../common/domain/digest.ts';
import { type SignatureVerdict, type SignerIdentity, unprovenVerdict } from '../../common/domain/signature.ts';
import { type InTotoStatement, parseBundle, parseStatement, slsaClaims, statementNames, tlogEntryKeys } from './bundle.ts';
import {
  COSIGN_ANNOTATION,
  cosignAttestationToBundle,
  cosignLayerToBundle,
  type CosignLayer,
  layerMaterial,
  parseHashedRekordBody,
  rekorSummary,
  sha256Hex,
} from './cosign-layer.ts';
import { classify, Failure } from './failure.ts';
import { parseEnvelope } from './formats/cosign-attestation.ts';
import {
  assertRekorCertificate,
  decodeSignature,
  parsePayload,
  plainKeyEntity,
  rawKeyEntity,
  rekorPublicKey,
  type SimpleSigningPayload,
} from './formats/cosign-signature.ts';
import { assertOrderedChain, parseCertificateDer, tlogSummary, tsaTime } from './formats/sigstore-bundle.ts';
import { decodeFulcioClaims } from './fulcio-claims.ts';
import { TrustedRoots } from './roots.ts';
import { keyFingerprint, type LoadedTrustedRoot, type TrustedKey } from './trust.ts';

export { trustSetVersion } from './roots.ts';

const CODE_SIGNING_EKU = '1.3.6.1.5.5.7.3.3';

/** Identity constraints for a one-off check (e.g. "must be signed by alice@example.com"). */
export interface ExpectedIdentity {
  readonly subject?: string | RegExp;
  readonly issuer?: string | RegExp;
}

export interface SignatureVerifier {
  /** Identifies the trust configuration as a whole (roots and keys): equal versions verify alike. */
  readonly version: string;
  /**
   * Version of the trust configuration: the sha256 of the trusted root file when there is one,
   * else a digest over every root's version. Recorded on signatures that no root verified.
   */
  readonly trustRootVersion: string;
  /** The roots, in the order they are tried. */
  readonly roots: readonly Pick<LoadedTrustedRoot, 'version' | 'path'>[];
  /**
   * Verifies one legacy cosign layer attached to `subject`. Never throws: every failure is a typed
   * outcome with a reason. Pure CPU work, no I/O.
   */
  verifyCosignLayer(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict;
  /** Verifies one cosign `.att` layer: `layer.payload` is the DSSE envelope, bound to `subject` by its in-toto subject. */
  verifyCosignAttestation(layer: CosignLayer, subject: Digest, expected?: ExpectedIdentity): SignatureVerdict;
  /**
   * Verifies a serialized Sigstore bundle (v0.1–v0.3) attached to `subject`: a DSSE in-toto
   * statement must name the subject's digest; a message signature must sign the subject's bytes.
   */
  verifyBundle(bundle: Uint8Array, subject: BundleSubject, expected?: ExpectedIdentity): SignatureVerdict;
}

/**
 * What a bundle is checked against: the artifact's digest (`sha256:<hex>` for images; another
 * algorithm only binds DSSE statements), and its bytes (the manifest) for message signatures.
 */
export interface BundleSubject {
  readonly digest: Digest | `${string}:${string}`;
  readonly bytes?: Buffer;
}

type Partial = Omit<SignatureVerdict, 'outcome' | 'reason'>;

/**
 * Builds the verifier once per process from the trusted roots and the operator's trusted keys.
 * Keyless signatures go through `@sigstore/verify` (Fulcio chain at the verified time, SCT, SET or
 * inclusion proof, RFC 3161 timestamps, signature) against each root in turn; key-based ones
 * through the trusted keys, or the key in a Rekor entry. On top of that it does the checks
 * sigstore does not: payload type, subject digest binding, EKU, single DSSE signature, and that
 * the transparency-log entry was made with the signing certificate or key.
 */
export function createSignatureVerifier(
  trust: LoadedTrustedRoot | readonly LoadedTrustedRoot[],
  trustedKeys: readonly TrustedKey[],
): SignatureVerifier {
  const loaded = Array.isArray(trust) ? (trust as readonly LoadedTrustedRoot[]) : [trust as LoadedTrustedRoot];
  const roots = new TrustedRoots(loaded);
  const setVersion = roots.version;

  /** Verifies `entity` signed by a certificate; returns the identity, claims and the root used. */
  function verifyCertificate(entity: SignedEntity, cert: X509Certificate, tlogKeys: readonly KeyObject[] | null): Partial {
    if (!(cert.keyUsage ?? []).includes(CODE_SIGNING_EKU)) {
      throw new Failure('cert_invalid', 'the signing certificate lacks the codeSigning extended key usage');
    }
    if (tlogKeys !== null && !tlogKeys.some((k) => k.equals(cert.publicKey))) {
      throw new Failure('tlog_invalid', 'the transparency log entry was logged with a different key than the one that signed');
    }
    const { signer, root } = roots.verifyCertificate(entity);
    const san = signer.identity?.subjectAlternativeName;
    const issuer = signer.identity?.extensions?.issuer ?? null;
    if (san === undefined || san === '') {
      throw new Failure('cert_invalid', 'the signing certificate has no email or URI subject alternative name');
    }
    return {
      ...unprovenVerdict('malformed', null, root.version),
      identity: { kind: san.includes('://') ? 'uri' : 'email', subject: san, issuer },
      claims: decodeFulcioClaims(signer.identity?.oids),
      key: { fingerprint: keyFingerprint(cert.publicKey), source: 'certificate', name: null },
      certificate: { fingerprint: `sha256:${sha256Hex(cert.raw)}`, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) },
    };
  }

  /**
   * Verifies `entity` signed by a key: a trusted key whose signature check passes, else the key a
   * Rekor entry names (then the entry's SET/proof must verify). `check` is the raw signature check.
   */
  function verifyKey(entity: SignedEntity, tlogKeys: readonly KeyObject[], hint: string | null): Partial {
    const ordered = hint === null ? trustedKeys : [...trustedKeys.filter((k) => keyMatchesHint(k, hint)), ...trustedKeys.filter((k) => !keyMatchesHint(k, hint))];
    const trusted = ordered.find((k) => entity.signature.verifySignature(k.key));
    let key: KeyObject;
    let source: 'trusted_key' | 'tlog';
    if (trusted !== undefined) {
      key = trusted.key;
      source = 'trusted_key';
    } else if (tlogKeys.length > 0) {
      const logged = tlogKeys.find((k) => entity.signature.verifySignature(k));
      if (logged === undefined) {
        throw new Failure('invalid_signature', 'the signature does not verify with the key logged in Rekor');
      }
      key = logged;
      source = 'tlog';
    } else {
      throw new Failure(
        'untrusted_root',
        trustedKeys.length === 0
          ? 'key-based signature, no trusted keys are configured (SIGNET_TRUSTED_KEYS) and it has no Rekor entry'
          : `key-based signature that none of the ${trustedKeys.length} trusted keys verifies, and it has no Rekor entry`,
      );
    }
    if (tlogKeys.length > 0 && !tlogKeys.some((k) => k.equals(key))) {
      throw new Failure('tlog_invalid', 'the transparency log entry was logged with a different key than the one that signed');
    }
    let version = setVersion;
    if (entity.tlogEntries.length > 0 || entity.timestamps.length > 0) {
      version = roots.verifyWithKey(entity, key).version;
    }
    const fingerprint = keyFingerprint(key);
    return {
      ...unprovenVerdict('malformed', null, version),
      identity: { kind: 'key', subject: fingerprint, issuer: null },
      key: { fingerprint, source, name: trusted?.name ?? null },
    };
  }

  function finish(partial: Partial, expected: ExpectedIdentity | undefined): SignatureVerdict {
    if (expected !== undefined && partial.identity !== null) {
      assertExpectedIdentity(partial.identity, expected);
    }
    return { ...partial, outcome: 'verified', reason: null };
  }

  function fail(partial: Partial, err: unknown): SignatureVerdict {
    const { outcome, reason } = classify(err);
    return { ...partial, outcome, reason };
  }

  const version = `sha256:${sha256Hex(Buffer.from([setVersion, ...trustedKeys.map((k) => k.fingerprint).sort()].join('\n')))}`;
  return {
    version,
    trustRootVersion: setVersion,
    roots: loaded.map((l) => ({ version: l.version, path: l.path })),

    verifyCosignLayer(layer, subject, expected) {
      let partial: Partial = unprovenVerdict('malformed', null, setVersion);
      try {
        const payload = parsePayload(layer.payload);
        partial = { ...partial, annotations: payload.optional ?? null };
        const { cert, rekor, body } = layerMaterial(layer, parseHashedRekordBody);
        if (rekor !== null) {
          partial = { ...partial, rekor: rekorSummary(rekor) };
        }
        if (body !== null && body.spec.data.hash.value.toLowerCase() !== sha256Hex(layer.payload)) {
          throw new Failure('invalid_signature', 'the payload is not the one whose digest was logged in Rekor (payload tampered with)');
        }
        const signature = decodeSignature(layer.annotations[COSIGN_ANNOTATION.signature] ?? '');
        const tlogKeys = body === null ? [] : [rekorPublicKey(body)];
        if (cert !== null) {
          partial = { ...partial, ...certificateSummary(cert) };
          if (rekor === null) {
            throw new Failure('tlog_missing', 'keyless signature without a Rekor bundle: nothing proves the certificate was valid when it signed');
          }
          assertRekorCertificate(body, cert);
          const entity = toSignedEntity(cosignLayerToBundle(layer, { certificate: cert, rekor }), layer.payload);
          partial = { ...partial, ...verifyCertificate(entity, cert, tlogKeys), rekor: partial.rekor, annotations: partial.annotations };
        } else {
          const entity = rekor === null
            ? plainKeyEntity(layer.payload, signature)
            : rawKeyEntity(toSignedEntity(cosignLayerToBundle(layer, { certificate: null, rekor, keyHint: '' }), layer.payload), layer.payload, signature);
          partial = { ...partial, ...verifyKey(entity, tlogKeys, null), rekor: partial.rekor, annotations: partial.annotations };
        }
        assertBoundToSubject(payload, subject);
        return finish(partial, expected);
      } catch (err) {
        return fail(partial, err);
      }
    },

    verifyCosignAttestation(layer, subject, expected) {
      let partial: Partial = unprovenVerdict('malformed', null, setVersion);
      try {
        const envelope = parseEnvelope(layer.payload);
        const statement = parseStatement(envelope.payloadType, Buffer.from(envelope.payload, 'base64'));
        partial = { ...partial, predicateType: statement.predicateType, claims: slsaClaims(statement) };
        const { cert, rekor } = layerMaterial(layer, null);
        if (rekor !== null) {
          partial = { ...partial, rekor: rekorSummary(rekor) };
        }
        const bundle = cosignAttestationToBundle(envelope, cert, rekor);
        const entity = toSignedEntity(bundle);
        const tlogKeys = bundle.verificationMaterial.tlogEntries.flatMap((e) => tlogEntryKeys(e));
        const statementClaims = partial.claims;
        if (cert !== null) {
          partial = { ...partial, ...certificateSummary(cert) };
          if (rekor === null) {
            throw new Failure('tlog_missing', 'keyless attestation without a Rekor bundle: nothing proves the certificate was valid when it signed');
          }
          const proven = verifyCertificate(entity, cert, tlogKeys);
          partial = { ...partial, ...proven, claims: { ...proven.claims, ...statementClaims }, rekor: partial.rekor, predicateType: statement.predicateType };
        } else {
          partial = { ...partial, ...verifyKey(entity, tlogKeys, null), claims: statementClaims, rekor: partial.rekor, predicateType: statement.predicateType };
        }
        assertStatementNames(statement, subject);
        return finish(partial, expected);
      } catch (err) {
        return fail(partial, err);
      }
    },

    verifyBundle(bytes, subject, expected) {
      let partial: Partial = unprovenVerdict('malformed', null, setVersion);
      try {
        const bundle = parseBundle(bytes);
        const [entry] = bundle.verificationMaterial.tlogEntries;
        partial = { ...partial, rekor: entry === undefined ? null : tlogSummary(entry), tsaTime: tsaTime(bundle) };
        const material = bundle.verificationMaterial.content;
        // Parsed before sigstore sees it, so garbage gets a plain reason.
        const cert =
          material.$case === 'publicKey'
            ? null
            : parseCertificateDer(
                (material.$case === 'certificate' ? material.certificate.rawBytes : material.x509CertificateChain.certificates[0]?.rawBytes) ??
                  Buffer.alloc(0),
              );
        let statement: InTotoStatement | null = null;
        let entity: SignedEntity;
        if (bundle.content.$case === 'dsseEnvelope') {
          const envelope = bundle.content.dsseEnvelope;
          if (envelope.signatures.length !== 1) {
            throw new Failure('malformed', `the DSSE envelope has ${envelope.signatures.length} signatures; exactly one is required`);
          }
          statement = parseStatement(envelope.payloadType, envelope.payload);
          partial = { ...partial, predicateType: statement.predicateType, claims: slsaClaims(statement) };
          entity = toSignedEntity(bundle);
        } else {
          const { messageDigest } = bundle.content.messageSignature;
          if (messageDigest === undefined || messageDigest.algorithm !== HashAlgorithm.SHA2_256 || messageDigest.digest.toString('hex') !== subject.digest.slice(7)) {
            throw new Failure('digest_mismatch', `the bundle's message digest is not ${subject.digest} (signature made for another artifact)`);
          }
          if (subject.bytes === undefined) {
            throw new Failure('malformed', 'a message-signature bundle needs the signed bytes to verify');
          }
          entity = toSignedEntity(bundle, subject.bytes);
        }
        const tlogKeys = bundle.verificationMaterial.tlogEntries.flatMap((e) => tlogEntryKeys(e));
        const statementClaims = partial.claims;
        if (cert === null) {
          partial = { ...partial, ...verifyKey(entity, tlogKeys, material.$case === 'publicKey' ? (material.publicKey.hint ?? null) : null), claims: statementClaims, rekor: partial.rekor, tsaTime: partial.tsaTime, predicateType: partial.predicateType };
        } else {
          partial = { ...partial, ...certificateSummary(cert) };
          if (material.$case === 'x509CertificateChain') {
            assertOrderedChain(material.x509CertificateChain.certificates.map((c) => c.rawBytes));
          }
          const proven = verifyCertificate(entity, cert, tlogKeys.length > 0 ? tlogKeys : null);
          partial = { ...partial, ...proven, claims: { ...proven.claims, ...statementClaims }, rekor: partial.rekor, tsaTime: partial.tsaTime, predicateType: partial.predicateType };
        }
        if (statement !== null) {
          assertStatementNames(statement, subject.digest);
        }
        return finish(partial, expected);
      } catch (err) {
        return fail(partial, err);
      }
    },
  };
}

function keyMatchesHint(key: TrustedKey, hint: string): boolean {
  return hint !== '' && (hint === key.name || hint === key.fingerprint || hint === Buffer.from(key.fingerprint.slice(7), 'hex').toString('base64'));
}

   function certificateSummary(cert: X509Certificate): Pick<SignatureVerdict, 'certificate' | 'key'> {
  return {
    certificate: { fingerprint: `sha256:${sha256Hex(cert.raw)}`, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) },
    key: { fingerprint: keyFingerprint(cert.publicKey), source: 'certificate', name: null },
  };
}

   /** The statement's subjects must include the image: otherwise it is about another artifact (replayed). */
function assertStatementNames(statement: InTotoStatement, subject: string): void {
  const colon = subject.indexOf(':');
  if (!statementNames(statement, subject.slice(0, colon), subject.slice(colon + 1))) {
    const named = statement.subject.map((s) => (s.digest.sha256 === undefined ? (s.name ?? '?') : `sha256:${s.digest.sha256}`)).slice(0, 3);
    throw new Failure('digest_mismatch', `the in-toto statement is about ${named.join(', ').slice(0, 200)}, not ${subject} (attestation copied from another artifact)`);
  }
}

    /** The check sigstore cannot do: the payload must name the digest the signature is attached to. */
function assertBoundToSubject(payload: SimpleSigningPayload, subject: Digest): void {
  const signed = payload.critical.image['docker-manifest-digest'];
  if (signed !== subject) {
    throw new Failure('digest_mismatch', `the payload signs ${signed.slice(0, 80)}, not ${subject} (signature copied from another image)`);
  }
}

function assertExpectedIdentity(identity: SignerIdentity, expected: ExpectedIdentity): void {
  const matches = (want: string | RegExp | undefined, got: string | null) =>
    want === undefined || (got !== null && (typeof want === 'string' ? want === got : want.test(got)));
  if (!matches(expected.subject, identity.subject)) {
    throw new Failure('identity_mismatch', `signed by ${identity.subject}, which is not the expected identity`);
  }
  if (!matches(expected.issuer, identity.issuer)) {
    throw new Failure('identity_mismatch', `issued by ${identity.issuer ?? '(none)'}, which is not the expected issuer`);
  }
}

