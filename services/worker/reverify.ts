import type { Kysely } from 'kysely';
import { listUntrustedKeySignatures, recordIndexedManifests, type IndexedManifest } from '../common/db/queries/manifests.ts';
import type { DB } from '../common/db/schema.generated.ts';
import type { OwnershipAnnouncer } from './ownership.ts';
import type { SignatureVerifier } from './verification/verifier.ts';

/**
 * Re-verifies, from stored material and with no registry call, the key-based signatures no trusted
 * key verified — after the set of trusted keys grew (a policy naming a new key). Returns the ids of
 * the manifests whose rows were rewritten, for re-deciding.
 */
export async function reverifyUntrustedKeySignatures(
  db: Kysely<DB>,
  verifier: SignatureVerifier,
  ownership: OwnershipAnnouncer,
): Promise<string[]> {
  const byManifest = new Map<string, IndexedManifest & { registry: string; repository: string }>();
  for (const s of await listUntrustedKeySignatures(db)) {
    const verdict = verifier.verifyCosignLayer({ payload: s.payload, annotations: s.layerAnnotations }, s.digest);
    if (verdict.outcome === 'untrusted_root') {
      continue;
    }
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
  const ids: string[] = [];
  for (const { registry, repository, ...manifest } of byManifest.values()) {
    const recorded = await recordIndexedManifests(db, registry, repository, [manifest]);
    await ownership.announce(recorded.ownershipChanges);
    const [stored] = recorded.manifests;
    if (stored !== undefined) {
      ids.push(stored.id);
    }
  }
  return ids;
}
