import type { Kysely } from 'kysely';
import * as images from '../common/db/queries/images.ts';
import * as signatures from '../common/db/queries/signatures.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { SignatureVerdict } from '../common/domain/signature.ts';
import { isSetAside } from '../common/domain/storable.ts';
import type { OwnershipAnnouncer } from './ownership.ts';
import type { SignatureChecks } from './verification/verifier.ts';

/** Verifies stored signature material again, as the worker verified it at push time: no registry call. */
export function verifyStored(
  verifier: SignatureChecks,
  s: Pick<signatures.StoredSignature, 'format' | 'payload' | 'layerAnnotations' | 'digest' | 'subjectBytes'>,
): SignatureVerdict | Promise<SignatureVerdict> {
  switch (s.format) {
    case 'cosign_legacy':
      return verifier.verifyCosignLayer({ payload: s.payload, annotations: s.layerAnnotations }, s.digest);
    case 'cosign_attestation':
      return verifier.verifyCosignAttestation({ payload: s.payload, annotations: s.layerAnnotations }, s.digest);
    case 'sigstore_bundle':
      return verifier.verifyBundle(s.payload, { digest: s.digest, ...(s.subjectBytes === null ? {} : { bytes: s.subjectBytes }) });
  }
}

export interface ReverifyProgress {
  /** Signatures verified again. */
  readonly checked: number;
  /** Of those, how many changed outcome or trust root version (rewritten in the ledger). */
  readonly changed: number;
  /** Changes by transition, e.g. `untrusted_root→verified`. */
  readonly transitions: Readonly<Record<string, number>>;
}

export interface ReverifyResult extends ReverifyProgress {
  /** Manifests whose signature rows were rewritten: to be decided again. */
  readonly manifestIds: readonly string[];
}

/**
 * Re-evaluates stored signature material against the current trusted roots and keys, from the
 * ledger alone (no registry, Rekor or TUF call). A signature whose outcome or trust root version
 * changes is rewritten (with ownership changes announced); the others are left as they are. With
 * `dryRun`, nothing is written. `onlyUntrustedKeys` limits it to key-based signatures no trusted key
 * verified (what a newly trusted key can change).
 */
export async function reverifyLedger(
  db: Kysely<DB>,
  verifier: SignatureChecks,
  ownership: OwnershipAnnouncer,
  opts: { onlyUntrustedKeys?: boolean; dryRun?: boolean; batch?: number; onProgress?: (p: ReverifyProgress) => void } = {},
): Promise<ReverifyResult> {
  const batch = opts.batch ?? 500;
  let afterId: string | null = null;
  let checked = 0;
  let changed = 0;
  const transitions: Record<string, number> = {};
  const manifestIds: string[] = [];
  for (;;) {
    const rows = await signatures.listStored(db, { afterId, limit: batch, onlyUntrustedKeys: opts.onlyUntrustedKeys ?? false });
    if (rows.length === 0) {
      break;
    }
    afterId = rows.at(-1)!.id;
    const byManifest = new Map<string, images.IndexedManifest & { registry: string; repository: string }>();
    // Stored with its material altered (domain/storable.ts): verifying what is stored would not
    // verify what was found. It stays malformed; a new index of the image decides it again.
    const kept = rows.filter((s) => !isSetAside(s));
    // The page's verifications at once: on the verification pool, every thread takes a share.
    const verdicts = await Promise.all(kept.map(async (s) => verifyStored(verifier, s)));
    for (const [i, s] of kept.entries()) {
      checked++;
      const verdict = verdicts[i]!;
      if (verdict.outcome === s.outcome && verdict.trustRootVersion === s.trustRootVersion) {
        continue;
      }
      changed++;
      const transition = `${s.outcome}→${verdict.outcome}`;
      transitions[transition] = (transitions[transition] ?? 0) + 1;
      const k = `${s.registry}/${s.repository}@${s.digest}`;
      const m = byManifest.get(k) ?? {
        registry: s.registry,
        repository: s.repository,
        digest: s.digest,
        mediaType: s.mediaType,
        size: s.size,
        parent: null,
        signatures: [],
        discoveryError: null,
      };
      byManifest.set(k, { ...m, signatures: [...m.signatures, { ...s, verdict }] });
    }
    if (opts.dryRun !== true) {
      for (const { registry, repository, ...manifest } of byManifest.values()) {
        const recorded = await images.recordIndexed(db, registry, repository, [manifest]);
        await ownership.announce(recorded.ownershipChanges);
        manifestIds.push(...recorded.manifests.map((m) => m.id));
      }
    }
    opts.onProgress?.({ checked, changed, transitions });
  }
  return { checked, changed, transitions, manifestIds };
}
