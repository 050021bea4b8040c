import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { digestTagPrefix, parseCosignTag, type Digest } from '../common/domain/digest.ts';
import { type SignatureFormat, type SignatureRecord, type SignatureSources, unprovenVerdict } from '../common/domain/signature.ts';
import { RegistryError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { FetchedManifest, RegistryClient } from './oci/client.ts';
import type { ImageManifest } from './oci/media-types.ts';
import { isBundleMediaType, MAX_BUNDLE_BYTES } from './verification/bundle.ts';
import { DSSE_ENVELOPE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE } from './verification/cosign-layer.ts';
import type { SignatureChecks } from './verification/verifier.ts';

/** Signature layers read from one signature, attestation or referrer manifest. */
export const MAX_SIGNATURE_LAYERS = 64;
/** Signature sources (`.sig`, `.att`, referrers) read for one digest. */
export const MAX_SIGNATURE_SOURCES = 64;

/**
 * How long a `.sig`/`.att` push waits, in steps, for the registry to link the pushed manifest's
 * tag: distribution notifies about a manifest push before it links the tag (microseconds later).
 */
const TAG_LINK_WAITS_MS: readonly number[] = [50, 100, 200, 400, 800];

/** cosign's OCI 1.1 signature artifacts (`--registry-referrers-mode=oci-1-1`): simple-signing layers. */
export const COSIGN_SIGNATURE_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';

export interface DiscoveryDeps {
  readonly registry: RegistryClient;
  /** In-process or on the verification pool's threads: each verdict is awaited. */
  readonly verifier: SignatureChecks;
  readonly maxPayloadBytes: number;
}

/** The artifact whose signatures are looked for: its digest, and its manifest bytes when already fetched. */
export interface DiscoverySubject {
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  readonly bytes?: Buffer;
  /**
   * Where its signatures are kept when not beside it (cosign's `COSIGN_REPOSITORY`): the `.sig`,
   * `.att` and referrers tags and the referrers API are read there, and only there, as cosign does.
   */
  readonly signatures?: { readonly registry: string; readonly repository: string } | undefined;
}

/** Where `subject`'s signature artifacts are read: its signatures repository, or its own. */
function signaturesAt(subject: DiscoverySubject): { readonly registry: string; readonly repository: string } {
  return subject.signatures ?? subject;
}

export interface Discovered {
  readonly signatures: SignatureRecord[];
  /** Why a source could not be read at all (stored as the manifest's status when nothing else was found). */
  readonly discoveryError: string | null;
  /** The artifacts read, and whether every place was read in full (what the ledger may withdraw). */
  readonly sources: SignatureSources;
}

const Referrers = z.looseObject({
  manifests: z
    .array(z.looseObject({ digest: z.string(), mediaType: z.string().optional(), artifactType: z.string().optional() }))
    .nullish(),
});

/** Artifact types worth fetching from a referrers list; anything else (SBOMs, Notary, …) is skipped. */
export function isSignatureArtifact(artifactType: string | undefined): boolean {
  return artifactType === COSIGN_SIGNATURE_ARTIFACT || isBundleMediaType(artifactType);
}

/**
 * Finds every signature and attestation attached to `subject` and verifies each:
 * - cosign's tags: `sha256-<hex>.sig` (simple-signing layers) and `sha256-<hex>.att` (DSSE layers);
 * - OCI 1.1 referrers: the referrers API, or, when the registry lacks it (distribution 2.8), the
 *   referrers tag schema's `sha256-<hex>` index; Sigstore bundles (cosign v3, GitHub) and cosign's
 *   OCI 1.1 signature artifacts;
 * - `pushed`: the artifact a webhook named (fetched by digest, since the tag may not point at it yet).
 * Transient registry trouble throws (the job retries); anything unusable is a stored outcome.
 * `sources` says which artifacts were found where clients look and which only because they were
 * pushed, and whether the reading was complete (no unusable source, no bound reached).
 */
export async function discoverSignatures(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  log: Logger,
  pushed?: { readonly digest: Digest; readonly tag: string },
): Promise<Discovered> {
  const prefix = digestTagPrefix(subject.digest);
  const found = new FoundSources(deps, subject);
  if (pushed !== undefined) {
    await readPushed(deps, subject, found, pushed);
  }
  // The three places are independent: asked at once, a job waits for the slowest, not the sum.
  // A pushed `.sig`/`.att` manifest is read beside what its tag names now (the one before, when
  // the registry has not linked the tag yet): both are recorded, and neither is withdrawn.
  const [sig, att, referrers] = await Promise.all([
    found.fetch(`${prefix}.sig`, `the signature manifest ${prefix}.sig`),
    found.fetch(`${prefix}.att`, `the attestation manifest ${prefix}.att`),
    listReferrers(deps, subject, (reference, what) => found.fetch(reference, what)),
  ]);
  found.add(sig, 'listed');
  found.add(att, 'listed');
  found.cut ||= !referrers.complete;
  await found.addReferrers(referrers.descriptors, 'listed');
  const signatures = await verifySources(deps, subject, found, log);
  const { errors, listed } = found;
  return {
    signatures,
    discoveryError: errors.length === 0 ? null : errors.join('; '),
    sources: {
      listed: [...listed],
      pushed: [...found.manifests.keys()].filter((d) => !listed.has(d)),
      complete: errors.length === 0 && !found.cut,
    },
  };
}

/** The signature artifacts of one subject, as discovery finds them, and what went wrong finding them. */
class FoundSources {
  readonly manifests = new Map<Digest, FetchedManifest>();
  /** Sources found where clients look (tags, referrers); the others were read because they were pushed. */
  readonly listed = new Set<Digest>();
  readonly errors: string[] = [];
  /** Set when a bound left something unread: what was not found may still be there. */
  cut = false;
  readonly #deps: DiscoveryDeps;
  readonly #subject: DiscoverySubject;
  /**
   * What this discovery has read, by tag and by digest: each is asked of the registry once (a
   * pushed `.sig` is otherwise read three times: its tag while waiting for the link, its digest,
   * and its tag again with the others).
   */
  readonly #read = new Map<string, Promise<FetchedManifest | null>>();

  constructor(deps: DiscoveryDeps, subject: DiscoverySubject) {
    this.#deps = deps;
    this.#subject = subject;
  }

  add(m: FetchedManifest | null, where: 'listed' | 'pushed'): void {
    if (m === null) {
      return;
    }
    if (!this.manifests.has(m.digest)) {
      if (this.manifests.size >= MAX_SIGNATURE_SOURCES) {
        this.cut = true;
        return;
      }
      this.manifests.set(m.digest, m);
    }
    if (where === 'listed') {
      this.listed.add(m.digest);
    }
  }

  /** A manifest by tag or digest; null when absent or unusable (said in `errors`, once). Transient trouble throws. */
  fetch(reference: string, what: string): Promise<FetchedManifest | null> {
    let read = this.#read.get(reference);
    if (read === undefined) {
      read = this.#fetch(reference, what);
      this.#read.set(reference, read);
    }
    return read;
  }

  /** A manifest this discovery read under `reference` itself (the pushed tag, once linked): later reads of the tag or its digest take it. */
  remember(reference: string, m: FetchedManifest): void {
    this.#read.set(reference, Promise.resolve(m));
    this.#read.set(m.digest, Promise.resolve(m));
  }

  async #fetch(reference: string, what: string): Promise<FetchedManifest | null> {
    try {
      const at = signaturesAt(this.#subject);
      const m = await this.#deps.registry.getManifest(at.registry, at.repository, reference);
      if (!this.#read.has(m.digest)) {
        this.#read.set(m.digest, Promise.resolve(m));
      }
      return m;
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
        return null;
      }
      if (err instanceof RegistryError && (err.code === 'INVALID' || err.code === 'TOO_LARGE')) {
        this.errors.push(`${what} is unusable: ${err.message}`);
        return null;
      }
      throw err;
    }
  }

  /** An index listing referrers (the referrers tag schema, or a pushed one): fetch each signature artifact. */
  async addReferrers(descriptors: readonly { digest: string; artifactType?: string | undefined }[], where: 'listed' | 'pushed'): Promise<void> {
    const wanted = descriptors.filter((r) => isSignatureArtifact(r.artifactType));
    this.cut ||= wanted.length > MAX_SIGNATURE_SOURCES;
    for (const d of wanted.slice(0, MAX_SIGNATURE_SOURCES)) {
      this.add(this.manifests.get(d.digest as Digest) ?? (await this.fetch(d.digest, `referrer ${d.digest}`)), where);
    }
  }
}

/** The artifact a webhook named, fetched by digest (its tag may not point at it yet). */
async function readPushed(deps: DiscoveryDeps, subject: DiscoverySubject, found: FoundSources, pushed: { readonly digest: Digest; readonly tag: string }): Promise<void> {
  const kind = parseCosignTag(pushed.tag)?.kind;
  if (kind === 'sig' || kind === 'att') {
    // Read the tag once it names the pushed manifest, so that what it named before is withdrawn.
    const linked = await awaitTagLink(deps.registry, subject, pushed);
    if (linked !== null) {
      found.remember(pushed.tag, linked);
    }
  }
  const artifact = await found.fetch(pushed.digest, `the pushed signature artifact ${pushed.digest}`);
  // An index under the referrers tag (or named by a crawl) lists referrers; under `.sig` it is hostile.
  const listsReferrers = pushed.tag === '' || kind === 'referrers';
  if (artifact?.manifest.kind === 'index' && listsReferrers) {
    await found.addReferrers(artifact.manifest.manifests, 'pushed');
  } else {
    found.add(artifact, 'pushed');
  }
}

/** Verifies every signature layer of every source found; what cannot be a signature source is said in `found.errors`. */
async function verifySources(deps: DiscoveryDeps, subject: DiscoverySubject, found: FoundSources, log: Logger): Promise<SignatureRecord[]> {
  const { registry, repository, digest } = subject;
  const signatures: SignatureRecord[] = [];
  let subjectBytes = subject.bytes;
  for (const source of found.manifests.values()) {
    if (source.manifest.kind !== 'image') {
      found.errors.push(`the signature artifact ${source.digest} holds an index, not a signature manifest`);
      continue;
    }
    const manifest = source.manifest;
    if (manifest.subject !== undefined && manifest.subject.digest !== digest) {
      // A referrer filed under another image (a hostile or broken registry): it says nothing about this one.
      found.errors.push(`the referrer ${source.digest} names ${manifest.subject.digest} as its subject, not ${digest}`);
      continue;
    }
    const layers = manifest.layers.filter((l) => formatOf(l.mediaType) !== null);
    if (layers.length > MAX_SIGNATURE_LAYERS) {
      log.warn({ source: source.digest, layers: layers.length, max: MAX_SIGNATURE_LAYERS }, 'signature manifest has too many layers; verifying the first ones');
    }
    for (const layer of layers.slice(0, MAX_SIGNATURE_LAYERS)) {
      const format = formatOf(layer.mediaType)!;
      if (format === 'sigstore_bundle' && subjectBytes === undefined) {
        // A message-signature bundle signs the manifest bytes; fetched once, only when needed.
        subjectBytes = (await deps.registry.getManifest(registry, repository, digest)).bytes;
      }
      signatures.push(await verifyLayer(deps, subject, { ...subject, bytes: subjectBytes }, source, manifest, layer, format));
    }
  }
  return signatures;
}

/**
 * Waits (a bounded while) until `pushed.tag` names the pushed manifest, and resolves to it. When it
 * still names another one (not linked yet, or this job is older than a later push): null, and
 * discovery reads both: the pushed one is recorded and what the tag names is not withdrawn; the
 * next look settles it.
 */
async function awaitTagLink(registry: RegistryClient, subject: DiscoverySubject, pushed: { readonly digest: Digest; readonly tag: string }): Promise<FetchedManifest | null> {
  for (const wait of [0, ...TAG_LINK_WAITS_MS]) {
    await sleep(wait);
    try {
      const at = signaturesAt(subject);
      const named = await registry.getManifest(at.registry, at.repository, pushed.tag);
      if (named.digest === pushed.digest) {
        return named;
      }
    } catch (err) {
      if (!(err instanceof RegistryError && err.code === 'NOT_FOUND')) {
        // Unusable or transient: discovery reads the tag again and deals with it.
        return null;
      }
    }
  }
  return null;
}

function formatOf(mediaType: string): SignatureFormat | null {
  if (mediaType === SIMPLE_SIGNING_MEDIA_TYPE) {
    return 'cosign_legacy';
  }
  if (mediaType === DSSE_ENVELOPE_MEDIA_TYPE) {
    return 'cosign_attestation';
  }
  return isBundleMediaType(mediaType) ? 'sigstore_bundle' : null;
}

/**
 * The referrers of `subject`: from the referrers API (every page), or from the referrers tag
 * schema's `sha256-<hex>` index when the registry has no such API (it answers 404, as
 * distribution 2.8 does, or something that is not an index). A 404 is remembered for the
 * repository a while (`REFERRERS_API_RECHECK_MS`), which goes to the tag schema straight away
 * meanwhile. `complete` is false when the page bounds left some unlisted.
 */
async function listReferrers(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  fetch: (reference: string, what: string) => Promise<FetchedManifest | null>,
): Promise<{ descriptors: { digest: string; artifactType?: string | undefined }[]; complete: boolean }> {
  const found: { digest: string; artifactType?: string | undefined }[] = [];
  const at = signaturesAt(subject);
  let next: string | null = `referrers/${subject.digest}`;
  let pages = 0;
  // A registry that answered 404 lately lacks the API: straight to the tag schema.
  if (!deps.registry.lacksReferrersApi(at.registry, at.repository)) {
    try {
      while (next !== null && pages < 10 && found.length < MAX_SIGNATURE_SOURCES * 4) {
        const page = await deps.registry.listPage(at.registry, at.repository, next);
        const parsed = Referrers.safeParse(page.body);
        if (!parsed.success) {
          throw new RegistryError('INVALID', 'the referrers API answered something that is not an image index');
        }
        found.push(...(parsed.data.manifests ?? []));
        next = page.next;
        pages++;
      }
      return { descriptors: found, complete: next === null };
    } catch (err) {
      if (!(err instanceof RegistryError) || err.transient || err.code === 'UNAUTHORIZED' || err.code === 'REFUSED') {
        throw err;
      }
      if (err.code === 'NOT_FOUND' && pages === 0) {
        deps.registry.noteNoReferrersApi(at.registry, at.repository);
      }
    }
  }
  const fallback = await fetch(digestTagPrefix(subject.digest), `the referrers tag ${digestTagPrefix(subject.digest)}`);
  return { descriptors: fallback?.manifest.kind === 'index' ? [...fallback.manifest.manifests] : [], complete: true };
}

async function verifyLayer(
  deps: DiscoveryDeps,
  subject: DiscoverySubject,
  withBytes: DiscoverySubject,
  source: FetchedManifest,
  manifest: ImageManifest,
  layer: ImageManifest['layers'][number],
  format: SignatureFormat,
): Promise<SignatureRecord> {
  const annotations = layer.annotations ?? {};
  const base = {
    format,
    materialDigest: materialDigest(layer.digest, annotations),
    sourceDigest: source.digest,
    layerIndex: manifest.layers.indexOf(layer),
    layerDigest: layer.digest,
    layerAnnotations: annotations,
  };
  const limit = format === 'sigstore_bundle' ? MAX_BUNDLE_BYTES : deps.maxPayloadBytes;
  let payload: Buffer;
  try {
    const at = signaturesAt(subject);
    payload = await deps.registry.getBlob(at.registry, at.repository, layer.digest, limit);
  } catch (err) {
    if (err instanceof RegistryError && !err.transient && err.code !== 'UNAUTHORIZED') {
      return {
        ...base,
        payload: Buffer.alloc(0),
        subjectBytes: null,
        verdict: unprovenVerdict(
          'malformed',
          `signature payload ${layer.digest} (layer ${base.layerIndex} of ${source.digest}) cannot be read: ${err.message}`,
          deps.verifier.trustRootVersion,
        ),
      };
    }
    throw err;
  }
  const verdict = await (format === 'cosign_legacy'
      ? deps.verifier.verifyCosignLayer({ payload, annotations }, subject.digest)
      : format === 'cosign_attestation'
        ? deps.verifier.verifyCosignAttestation({ payload, annotations }, subject.digest)
        : deps.verifier.verifyBundle(payload, { digest: subject.digest, ...(withBytes.bytes === undefined ? {} : { bytes: withBytes.bytes }) }));
  // A message-signature bundle signs the manifest bytes: kept, so it can be re-verified offline.
  const keepBytes = format === 'sigstore_bundle' && verdict.predicateType === null && withBytes.bytes !== undefined;
  return { ...base, payload, subjectBytes: keepBytes ? withBytes.bytes : null, verdict };
}

/** Identifies a signature by everything that makes it: the payload digest and the annotations. */
export function materialDigest(layerDigest: string, annotations: Readonly<Record<string, string>>): Digest {
  const sorted = Object.keys(annotations)
    .sort()
    .map((k) => [k, annotations[k]]);
  return `sha256:${createHash('sha256').update(JSON.stringify([layerDigest, sorted])).digest('hex')}` as Digest;
}
