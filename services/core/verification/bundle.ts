import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import {
  BUNDLE_V01_MEDIA_TYPE,
  BUNDLE_V02_MEDIA_TYPE,
  BUNDLE_V03_LEGACY_MEDIA_TYPE,
  BUNDLE_V03_MEDIA_TYPE,
  bundleFromJSON,
  type Bundle,
} from '@sigstore/bundle';
import { toSignedEntity, type SignedEntity } from '@sigstore/verify';
import { z } from 'zod';
import { MalformedSignatureError } from './cosign-layer.ts';

/** Every Sigstore bundle media type Signet reads; anything else is `malformed` (unknown version). */
export const BUNDLE_MEDIA_TYPES: ReadonlySet<string> = new Set([
  BUNDLE_V01_MEDIA_TYPE,
  BUNDLE_V02_MEDIA_TYPE,
  BUNDLE_V03_LEGACY_MEDIA_TYPE,
  BUNDLE_V03_MEDIA_TYPE,
]);

/** True for `application/vnd.dev.sigstore.bundle…` media/artifact types, known version or not. */
/**
 * `toSignedEntity`, without stack traces for the errors its certificate parser throws and catches
 * for every OCTET STRING that is not nested DER: capturing them was a tenth of a keyless
 * verification's non-crypto time. An error that escapes is reported by its message alone.
 */
export function signedEntity(bundle: Bundle, artifact?: Buffer): SignedEntity {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return toSignedEntity(bundle, artifact);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export function isBundleMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && mediaType.startsWith('application/vnd.dev.sigstore.bundle');
}

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** Upper bound for one bundle or DSSE envelope; real ones are a few KiB. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;

/** Parses a serialized Sigstore bundle (v0.1–v0.3). Throws {@link MalformedSignatureError} with the reason. */
export function parseBundle(bytes: Uint8Array): Bundle {
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new MalformedSignatureError(`the bundle is ${bytes.length} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new MalformedSignatureError('the bundle is not JSON');
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== 'string' || !BUNDLE_MEDIA_TYPES.has(mediaType)) {
    throw new MalformedSignatureError(`unsupported bundle media type ${JSON.stringify(mediaType)?.slice(0, 100) ?? 'undefined'}`);
  }
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (err) {
    const fields = (err as { fields?: unknown }).fields;
    const which = Array.isArray(fields) && fields.length > 0 ? ` (${fields.join(', ')})` : '';
    throw new MalformedSignatureError(`invalid ${mediaType} bundle: ${(err as Error).message}${which}`, { cause: err });
  }
  for (const entry of bundle.verificationMaterial.tlogEntries) {
    // bundleFromJSON accepts "-1"; a log index is never negative.
    if (!/^\d{1,19}$/.test(String(entry.logIndex))) {
      throw new MalformedSignatureError(`the transparency log entry has an invalid log index ${JSON.stringify(entry.logIndex)}`);
    }
  }
  return bundle;
}

/** An in-toto statement (v0.1 or v1), the part Signet reads. */
const InTotoStatement = z.object({
  _type: z.string().regex(/^https:\/\/in-toto\.io\/Statement\/v(0\.1|1)$/),
  subject: z
    .array(z.object({ name: z.string().optional(), digest: z.record(z.string(), z.string()) }))
    .min(1)
    .max(1024),
  predicateType: z.string().min(1).max(1024),
  predicate: z.unknown().optional(),
});
export type InTotoStatement = z.infer<typeof InTotoStatement>;

/** Parses a DSSE payload as an in-toto statement; throws {@link MalformedSignatureError}. */
export function parseStatement(payloadType: string, payload: Uint8Array): InTotoStatement {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new MalformedSignatureError(`the DSSE payload type is ${JSON.stringify(payloadType.slice(0, 100))}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new MalformedSignatureError('the DSSE payload is not JSON');
  }
  const parsed = InTotoStatement.safeParse(json);
  if (!parsed.success) {
    throw new MalformedSignatureError(`the DSSE payload is not an in-toto statement: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Does the statement name the digest `algorithm`:`hex` (lower-case hex) among its subjects? */
export function statementNames(statement: InTotoStatement, algorithm: string, hex: string): boolean {
  return hex !== '' && statement.subject.some((s) => s.digest[algorithm]?.toLowerCase() === hex);
}

const str = z.string().max(4096);
const SlsaV02 = z.looseObject({
  builder: z.looseObject({ id: str }).optional(),
  buildType: str.optional(),
  invocation: z
    .looseObject({ configSource: z.looseObject({ uri: str.optional(), digest: z.record(z.string(), str).optional(), entryPoint: str.optional() }).optional() })
    .optional(),
  materials: z.array(z.looseObject({ uri: str.optional(), digest: z.record(z.string(), str).optional() })).optional(),
});
const ResourceDescriptor = z.looseObject({ uri: str.optional(), digest: z.record(z.string(), str).optional(), name: str.optional() });
const SlsaV1 = z.looseObject({
  buildDefinition: z
    .looseObject({
      buildType: str.optional(),
      externalParameters: z.looseObject({ workflow: z.looseObject({ ref: str.optional(), repository: str.optional(), path: str.optional() }).optional() }).optional(),
      resolvedDependencies: z.array(ResourceDescriptor).optional(),
    })
    .optional(),
  runDetails: z.looseObject({ builder: z.looseObject({ id: str }).optional(), metadata: z.looseObject({ invocationId: str.optional() }).optional() }).optional(),
});

export const SLSA_V02 = 'https://slsa.dev/provenance/v0.2';
export const SLSA_V1 = 'https://slsa.dev/provenance/v1';

/**
 * What SLSA provenance says about the build, as ledger claims: builder id, build type and the
 * source repository, ref and commit digest. Empty for other predicates or shapes it cannot read.
 */
export function slsaClaims(statement: InTotoStatement): Record<string, string> {
  const claims: Record<string, string> = {};
  const put = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== '') {
      claims[name] = value;
    }
  };
  if (statement.predicateType === SLSA_V02) {
    const p = SlsaV02.safeParse(statement.predicate);
    if (!p.success) {
      return claims;
    }
    put('slsaBuilderId', p.data.builder?.id);
    put('slsaBuildType', p.data.buildType);
    const source = p.data.invocation?.configSource ?? p.data.materials?.[0];
    const [uri, ref] = splitGitRef(source?.uri);
    put('slsaSourceRepository', uri);
    put('slsaSourceRef', ref);
    put('slsaSourceDigest', gitDigest(source?.digest));
  } else if (statement.predicateType === SLSA_V1) {
    const p = SlsaV1.safeParse(statement.predicate);
    if (!p.success) {
      return claims;
    }
    put('slsaBuilderId', p.data.runDetails?.builder?.id);
    put('slsaBuildType', p.data.buildDefinition?.buildType);
    put('slsaInvocationId', p.data.runDetails?.metadata?.invocationId);
    const workflow = p.data.buildDefinition?.externalParameters?.workflow;
    const dep = p.data.buildDefinition?.resolvedDependencies?.find((d) => d.uri?.startsWith('git+') === true) ?? p.data.buildDefinition?.resolvedDependencies?.[0];
    const [uri, ref] = splitGitRef(dep?.uri);
    put('slsaSourceRepository', workflow?.repository ?? uri);
    put('slsaSourceRef', workflow?.ref ?? ref);
    put('slsaSourceDigest', gitDigest(dep?.digest));
  }
  return claims;
}

/** `git+https://github.com/o/r@refs/heads/main` → [`https://github.com/o/r`, `refs/heads/main`]. */
function splitGitRef(uri: string | undefined): [string | undefined, string | undefined] {
  if (uri === undefined) {
    return [undefined, undefined];
  }
  const plain = uri.startsWith('git+') ? uri.slice(4) : uri;
  const at = plain.lastIndexOf('@');
  return at > plain.indexOf('://') + 3 ? [plain.slice(0, at), plain.slice(at + 1)] : [plain, undefined];
}

function gitDigest(digest: Readonly<Record<string, string>> | undefined): string | undefined {
  if (digest === undefined) {
    return undefined;
  }
  const [alg, value] = Object.entries(digest).find(([k]) => k === 'gitCommit' || k === 'sha1') ?? Object.entries(digest)[0] ?? [];
  return alg === undefined || value === undefined ? undefined : `${alg}:${value}`;
}

/**
 * The signing keys a transparency-log entry body names (certificate or public key), for the check
 * sigstore-js does not make: the entry was logged with the key that signed. Handles hashedrekord
 * 0.0.1/0.0.2, dsse 0.0.1/0.0.2 and intoto 0.0.2; an unreadable body yields none.
 */
export function tlogEntryKeys(entry: { readonly canonicalizedBody: Buffer }): KeyObject[] {
  let body: unknown;
  try {
    body = JSON.parse(entry.canonicalizedBody.toString('utf8'));
  } catch {
    return [];
  }
  const b = body as { kind?: string; apiVersion?: string; spec?: Record<string, unknown> };
  const spec = b.spec ?? {};
  const pems: string[] = [];
  const ders: Buffer[] = [];
  const get = (o: unknown, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);
  const pushVerifierV2 = (v: unknown) => {
    const cert = get(v, 'x509Certificate', 'rawBytes');
    const key = get(v, 'publicKey', 'rawBytes');
    for (const raw of [cert, key]) {
      if (typeof raw === 'string') {
        ders.push(Buffer.from(raw, 'base64'));
      }
    }
  };
  if (b.kind === 'hashedrekord' && b.apiVersion === '0.0.1') {
    const c = get(spec, 'signature', 'publicKey', 'content');
    if (typeof c === 'string') {pems.push(Buffer.from(c, 'base64').toString('utf8'));}
  } else if (b.kind === 'hashedrekord' && b.apiVersion === '0.0.2') {
    pushVerifierV2(get(spec, 'hashedRekordV002', 'signature', 'verifier'));
  } else if (b.kind === 'dsse' && b.apiVersion === '0.0.1') {
    for (const s of (get(spec, 'signatures') as unknown[] | undefined) ?? []) {
      const v = get(s, 'verifier');
      if (typeof v === 'string') {pems.push(Buffer.from(v, 'base64').toString('utf8'));}
    }
  } else if (b.kind === 'dsse' && b.apiVersion === '0.0.2') {
    for (const s of (get(spec, 'dsseV002', 'signatures') as unknown[] | undefined) ?? []) {
      pushVerifierV2(get(s, 'verifier'));
    }
  } else if (b.kind === 'intoto' && b.apiVersion === '0.0.2') {
    for (const s of (get(spec, 'content', 'envelope', 'signatures') as unknown[] | undefined) ?? []) {
      const k = get(s, 'publicKey');
      if (typeof k === 'string') {pems.push(Buffer.from(k, 'base64').toString('utf8'));}
    }
  }
  const keys: KeyObject[] = [];
  for (const pem of pems) {
    const key = keyFrom(pem);
    if (key !== null) {keys.push(key);}
  }
  for (const der of ders) {
    const key = keyFrom(der);
    if (key !== null) {keys.push(key);}
  }
  return keys;
}

function keyFrom(material: string | Buffer): KeyObject | null {
  try {
    return new X509Certificate(material).publicKey;
  } catch {
    try {
      return typeof material === 'string' ? createPublicKey(material) : createPublicKey({ key: material, format: 'der', type: 'spki' });
    } catch {
      return null;
    }
  }
}
