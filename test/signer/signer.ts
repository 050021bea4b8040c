// Test-only cosign signer: produces legacy cosign signature layers (keyless and key-based), and the
// Sigstore trusted root that verifies them, entirely offline. See notes/sigstore.md §6.
import { createHash, generateKeyPairSync, KeyObject, sign, type KeyPairKeyObjectResult } from 'node:crypto';
// Deep imports on purpose: the @sigstore/mock package root also loads its nock-based HTTP mocks,
// and nock patches node:http globally as soon as it is imported.
import { initializeCTLog } from '@sigstore/mock/dist/fulcio/ctlog.js';
import { initializeTLog } from '@sigstore/mock/dist/rekor/tlog.js';
import { COSIGN_ANNOTATION, type CosignLayer } from '../../services/core/verification/cosign-layer.ts';
import { createFulcioCA, toPem, type KeylessIdentity } from './fulcio.ts';

export type { KeylessIdentity } from './fulcio.ts';

/** A cosign signing key pair (ECDSA P-256), as `cosign generate-key-pair` would produce. */
export interface TestKey {
  privateKey: KeyObject;
  /** SPKI public key PEM (`-----BEGIN PUBLIC KEY-----`), as in `cosign.pub`. */
  publicKeyPem: string;
}

/** One independent offline Sigstore deployment: CA, CT log and Rekor, with its trusted root. */
export interface TestSigstore {
  /**
   * `application/vnd.dev.sigstore.trustedroot+json;version=0.1` object (plain JSON, ready for
   * `TrustedRoot.fromJSON` or a file): one CA (intermediate + root), one tlog (Rekor), one ctlog,
   * all valid from 2020-01-01.
   */
  readonly trustedRoot: Record<string, unknown>;
  /**
   * Signs `payload` keyless: a fresh P-256 leaf from the intermediate (valid 10 minutes from now)
   * with an SCT, and a hashedrekord entry logged to the test Rekor for the SET. Returns the layer
   * with the four annotations cosign writes: signature, certificate, chain and bundle.
   */
  signKeyless(payload: Buffer, identity: KeylessIdentity): Promise<CosignLayer>;
  /**
   * Signs `payload` with `key`. With `tlog: true`, also logs a hashedrekord whose publicKey is the
   * key's PEM and adds the bundle annotation; otherwise the layer carries only the signature.
   */
  signWithKey(payload: Buffer, key: TestKey, opts?: { tlog?: boolean }): Promise<CosignLayer>;
  /**
   * Signs an in-toto statement keyless into a Sigstore bundle v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`),
   * as cosign v3 and GitHub attestations do: DSSE envelope, certificate, and a `dsse` 0.0.1 Rekor
   * entry with an inclusion proof (checkpoint) and a SET. Returns the serialized bundle.
   */
  signDsseBundle(statement: object, identity: KeylessIdentity): Promise<Buffer>;
  /** Signs `artifact` (e.g. manifest bytes) keyless into a v0.3 message-signature bundle (hashedrekord entry). */
  signMessageBundle(artifact: Buffer, identity: KeylessIdentity): Promise<Buffer>;
  /**
   * A cosign `.att` layer, as `cosign attest` (v2) writes it: the DSSE envelope as the payload,
   * certificate, chain and a Rekor bundle whose entry is `intoto` 0.0.2, and the `predicateType` annotation.
   */
  attestKeyless(statement: { predicateType: string }, identity: KeylessIdentity): Promise<CosignLayer>;
}

export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';

/** An in-toto statement about an image digest (`sha256:<hex>`). */
export function inTotoStatement(digest: string, predicateType: string, predicate: object, name = 'image'): { predicateType: string } & Record<string, unknown> {
  return { _type: IN_TOTO_STATEMENT_V1, subject: [{ name, digest: { sha256: digest.replace(/^sha256:/, '') } }], predicateType, predicate };
}

/** DSSE pre-authentication encoding: what a DSSE signature signs. */
function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

const REKOR_URL = 'https://rekor.test.invalid';
const FULCIO_URL = 'https://fulcio.test.invalid';
const CTFE_URL = 'https://ctfe.test.invalid';
const VALID_FROM = '2020-01-01T00:00:00Z';

/** Rekor v1 log entry as returned by the mock TLog (its .d.ts points at an uninstalled types package). */
interface RekorLogEntry {
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification: {
    signedEntryTimestamp: string;
    inclusionProof?: { logIndex: number; treeSize: number; rootHash: string; hashes: string[]; checkpoint: string };
  };
}
type MockTLog = Awaited<ReturnType<typeof initializeTLog>>;

// The mock TLog draws logIndex at random from [0, 10^7); entries are re-logged on a collision so
// every signature made in this process has its own index (tests may key on it).
const usedLogIndexes = new Set<number>();

/** Creates a new offline Sigstore with its own keys, so a second instance acts as an untrusted CA. */
export async function createTestSigstore(): Promise<TestSigstore> {
  const ctKeys = generateP256();
  const rekorKeys = generateP256();
  const ctLog = await initializeCTLog(ctKeys);
  const tlog = await initializeTLog(REKOR_URL, rekorKeys);
  const ca = await createFulcioCA(ctLog);

  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [transparencyLog(REKOR_URL, rekorKeys.publicKey)],
    certificateAuthorities: [
      {
        subject: { organization: 'signet.test', commonName: 'signet-test-root' },
        uri: FULCIO_URL,
        certChain: { certificates: [ca.intermediate, ca.root].map((c) => ({ rawBytes: c.der.toString('base64') })) },
        validFor: { start: VALID_FROM },
      },
    ],
    ctlogs: [transparencyLog(CTFE_URL, ctKeys.publicKey)],
    timestampAuthorities: [],
  };

  return {
    trustedRoot,

    async signKeyless(payload, identity) {
      const keys = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      // Whole seconds: the certificate cannot encode milliseconds, and the Rekor integratedTime
      // (wall clock, floored to seconds) must not fall before notBefore.
      const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
      const leaf = await ca.issueLeaf(keys.publicKey, identity, notBefore);
      const signature = sign('sha256', payload, KeyObject.from(keys.privateKey)).toString('base64');
      const entry = await logHashedRekord(tlog, payload, signature, leaf.pem);
      return {
        payload,
        annotations: {
          [COSIGN_ANNOTATION.signature]: signature,
          [COSIGN_ANNOTATION.certificate]: leaf.pem,
          [COSIGN_ANNOTATION.chain]: ca.intermediate.pem + ca.root.pem,
          [COSIGN_ANNOTATION.bundle]: rekorBundleAnnotation(entry),
        },
      };
    },

    async signDsseBundle(statement, identity) {
      const { leaf, sign: signBytes } = await keylessSigner(ca, identity);
      const payload = Buffer.from(JSON.stringify(statement));
      const payloadType = 'application/vnd.in-toto+json';
      const sig = signBytes(pae(payloadType, payload));
      const envelope = { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: '', sig: sig.toString('base64') }] };
      const entry = await logEntry(tlog, {
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          envelopeHash: { algorithm: 'sha256', value: createHash('sha256').update(JSON.stringify(envelope)).digest('hex') },
          payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') },
          signatures: [{ signature: sig.toString('base64'), verifier: Buffer.from(leaf.pem).toString('base64') }],
        },
      });
      return bundleV03({ certificate: { rawBytes: leaf.der.toString('base64') }, tlogEntries: [bundleTlogEntry(entry, 'dsse', '0.0.1')] }, { dsseEnvelope: envelope });
    },

    async signMessageBundle(artifact, identity) {
      const { leaf, sign: signBytes } = await keylessSigner(ca, identity);
      const signature = signBytes(artifact).toString('base64');
      const entry = await logHashedRekord(tlog, artifact, signature, leaf.pem);
      return bundleV03(
        { certificate: { rawBytes: leaf.der.toString('base64') }, tlogEntries: [bundleTlogEntry(entry, 'hashedrekord', '0.0.1')] },
        { messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(artifact).digest('base64') }, signature } },
      );
    },

    async attestKeyless(statement, identity) {
      const { leaf, sign: signBytes } = await keylessSigner(ca, identity);
      const payload = Buffer.from(JSON.stringify(statement));
      const payloadType = 'application/vnd.in-toto+json';
      const sig = signBytes(pae(payloadType, payload)).toString('base64');
      const envelope = { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: '', sig }] };
      const entry = await logEntry(tlog, {
        apiVersion: '0.0.2',
        kind: 'intoto',
        spec: {
          content: {
            envelope: {
              payloadType,
              // Rekor's intoto 0.0.2 stores the payload and signature base64 twice over.
              payload: Buffer.from(envelope.payload).toString('base64'),
              signatures: [{ sig: Buffer.from(sig).toString('base64'), publicKey: Buffer.from(leaf.pem).toString('base64') }],
            },
            hash: { algorithm: 'sha256', value: createHash('sha256').update(JSON.stringify(envelope)).digest('hex') },
            payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') },
          },
        },
      });
      return {
        payload: Buffer.from(JSON.stringify(envelope)),
        annotations: {
          [COSIGN_ANNOTATION.signature]: '',
          [COSIGN_ANNOTATION.certificate]: leaf.pem,
          [COSIGN_ANNOTATION.chain]: ca.intermediate.pem + ca.root.pem,
          [COSIGN_ANNOTATION.bundle]: rekorBundleAnnotation(entry),
          predicateType: statement.predicateType,
        },
      };
    },

    async signWithKey(payload, key, opts = {}) {
      const signature = sign('sha256', payload, key.privateKey).toString('base64');
      const annotations: Record<string, string> = { [COSIGN_ANNOTATION.signature]: signature };
      if (opts.tlog === true) {
        const entry = await logHashedRekord(tlog, payload, signature, key.publicKeyPem);
        annotations[COSIGN_ANNOTATION.bundle] = rekorBundleAnnotation(entry);
      }
      return { payload, annotations };
    },
  };
}

/** A fresh keyless signing key and its Fulcio leaf; `sign` signs with the leaf's key (ECDSA P-256, SHA-256). */
async function keylessSigner(ca: Awaited<ReturnType<typeof createFulcioCA>>, identity: KeylessIdentity) {
  const keys = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  const leaf = await ca.issueLeaf(keys.publicKey, identity, notBefore);
  const privateKey = KeyObject.from(keys.privateKey);
  return { leaf, sign: (bytes: Buffer) => sign('sha256', bytes, privateKey) };
}

function bundleV03(verificationMaterial: Record<string, unknown>, content: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', verificationMaterial, ...content }));
}

/** A Rekor v1 log entry as a bundle's `tlogEntries[]` item, with its inclusion proof and SET. */
function bundleTlogEntry(entry: RekorLogEntry, kind: string, version: string): Record<string, unknown> {
  const proof = entry.verification.inclusionProof!;
  return {
    logIndex: String(entry.logIndex),
    logId: { keyId: Buffer.from(entry.logID, 'hex').toString('base64') },
    kindVersion: { kind, version },
    integratedTime: String(entry.integratedTime),
    inclusionPromise: { signedEntryTimestamp: entry.verification.signedEntryTimestamp },
    inclusionProof: {
      logIndex: String(proof.logIndex),
      rootHash: Buffer.from(proof.rootHash, 'hex').toString('base64'),
      treeSize: String(proof.treeSize),
      hashes: proof.hashes,
      checkpoint: { envelope: proof.checkpoint },
    },
    canonicalizedBody: entry.body,
  };
}

/** Logs any proposed entry body to the test Rekor, with a log index unique in this process. */
async function logEntry(tlog: MockTLog, proposedEntry: object): Promise<RekorLogEntry> {
  for (;;) {
    const response = (await tlog.log(proposedEntry)) as Record<string, RekorLogEntry>;
    const [entry] = Object.values(response);
    if (entry === undefined) {
      throw new Error('the mock TLog returned no entry');
    }
    if (!usedLogIndexes.has(entry.logIndex)) {
      usedLogIndexes.add(entry.logIndex);
      return entry;
    }
  }
}

/** Generates a cosign-style ECDSA P-256 signing key. */
export function generateTestKey(): TestKey {
  const { privateKey, publicKey } = generateP256();
  return { privateKey, publicKeyPem: toPem(publicKey.export({ type: 'spki', format: 'der' }), 'PUBLIC KEY') };
}

/**
 * The cosign "simple signing" payload for an image, byte-for-byte as cosign (Go `json.Marshal`)
 * writes it: `{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":…},
 * "type":"cosign container image signature"},"optional":…}`. `optional` keys are sorted and
 * `<`, `>`, `&`, U+2028/U+2029 are \u-escaped, as Go does.
 */
export function simpleSigningPayload(
  dockerReference: string,
  digest: string,
  optional?: Record<string, string> | null,
): Buffer {
  const sortedOptional =
    optional === undefined || optional === null
      ? null
      : Object.fromEntries(Object.entries(optional).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const json = JSON.stringify({
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': digest },
      type: 'cosign container image signature',
    },
    optional: sortedOptional,
  });
  const goEscaped = json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return Buffer.from(goEscaped, 'utf8');
}

/**
 * Logs a hashedrekord v0.0.1 entry, as `cosign sign` uploads it. The mock TLog canonicalizes the
 * proposed entry (RFC 8785), which is what Rekor stores as the entry body.
 */
async function logHashedRekord(
  tlog: MockTLog,
  payload: Buffer,
  signatureB64: string,
  publicKeyPem: string,
): Promise<RekorLogEntry> {
  const proposedEntry = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
      signature: { content: signatureB64, publicKey: { content: Buffer.from(publicKeyPem, 'utf8').toString('base64') } },
    },
  };
  return logEntry(tlog, proposedEntry);
}

/** The `dev.sigstore.cosign/bundle` annotation: cosign's `RekorBundle` JSON, logID in hex. */
function rekorBundleAnnotation(entry: RekorLogEntry): string {
  return JSON.stringify({
    SignedEntryTimestamp: entry.verification.signedEntryTimestamp,
    Payload: {
      body: entry.body,
      integratedTime: entry.integratedTime,
      logIndex: entry.logIndex,
      logID: entry.logID,
    },
  });
}

/** A trusted-root tlog/ctlog entry; the log ID is sha256 of the key's SPKI DER, as Rekor and CT use. */
function transparencyLog(baseUrl: string, publicKey: KeyObject): Record<string, unknown> {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return {
    baseUrl,
    hashAlgorithm: 'SHA2_256',
    publicKey: {
      rawBytes: spki.toString('base64'),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: { start: VALID_FROM },
    },
    logId: { keyId: createHash('sha256').update(spki).digest('base64') },
  };
}

function generateP256(): KeyPairKeyObjectResult {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/**
 * A policy for `host` under which `keyless/*` must be signed keyless by `signer` and `keyed/*`
 * with `key` (and a Rekor entry): what the end-to-end tests and benchmarks push.
 */
export function keylessAndKeyPolicy(host: string, signer: { email: string; issuer: string }, key: TestKey): string {
  return [
    'allow_with_verification:',
    `  "${host}":`,
    '    keyless/*:',
    `      certificate-identity: ${signer.email}`,
    `      certificate-oidc-issuer: ${signer.issuer}`,
    '    keyed/*:',
    `      key: ${JSON.stringify(key.publicKeyPem)}`,
    '',
  ].join('\n');
}
