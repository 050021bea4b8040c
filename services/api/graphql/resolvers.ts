import { createGraphQLError } from 'graphql-yoga';
import * as identities from '../../common/db/queries/identities.ts';
import * as images from '../../common/db/queries/images.ts';
import * as ownership from '../../common/db/queries/ownership.ts';
import * as repositories from '../../common/db/queries/repositories.ts';
import * as signatures from '../../common/db/queries/signatures.ts';
import * as tags from '../../common/db/queries/tags.ts';
import { fulcioClaimOid } from '../../common/domain/fulcio.ts';
import { ImageReferenceError, normalizeRegistry, parseImageReference } from '../../common/domain/image-ref.ts';
import type { WithdrawalCause } from '../../common/domain/signature.ts';
import type { IdentityModel, Loaders, OwnershipChangeModel, RepositoryOwnerModel, SignatureModel } from './models.ts';
import { imageConnection } from './images.ts';
import { selects } from './lookahead.ts';
import { badInput, connection, decodeCursor, pageSize, rowsConnection, searchPrefix } from './pagination.ts';
import type { KeySource, OwnershipChangeKind, Resolvers, SignatureWithdrawal } from './types.generated.ts';
import { attestationResults } from './attestation-results.ts';

/** Rekor instances whose entries have public web pages, by log id (hex, as cosign records it). */
const PUBLIC_REKOR: Readonly<Record<string, { search: string; api: string }>> = {
  c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d: {
    search: 'https://search.sigstore.dev/?logIndex=',
    api: 'https://rekor.sigstore.dev/api/v1/log/entries?logIndex=',
  },
};

function rekorLink(logId: string | null, logIndex: string | null, kind: 'search' | 'api'): string | null {
  const log = logId === null ? undefined : PUBLIC_REKOR[logId];
  return log === undefined || logIndex === null ? null : `${log[kind]}${logIndex}`;
}

/** A ledger value of a closed set → its GraphQL enum value (`trusted_key` → `TRUSTED_KEY`). */
export const upper = <T extends string>(v: T): Uppercase<T> => v.toUpperCase() as Uppercase<T>;
/** A GraphQL enum value → the ledger's (`TRUSTED_KEY` → `trusted_key`). */
export const lower = <T extends string>(v: T): Lowercase<T> => v.toLowerCase() as Lowercase<T>;

const KEY_SOURCES: Readonly<Record<string, KeySource>> = { certificate: 'CERTIFICATE', trusted_key: 'TRUSTED_KEY', tlog: 'TLOG' };

function keySource(v: string | null): KeySource | null {
  if (v === null) {
    return null;
  }
  const k = KEY_SOURCES[v];
  if (k === undefined) {
    // The column is CHECK-constrained to these three: anything else is a bug (masked).
    throw new Error(`unknown key source ${v}`);
  }
  return k;
}

function present<T>(rows: readonly (T | null | Error)[]): T[] {
  return rows.filter((r): r is T => r !== null && !(r instanceof Error));
}

/** Image fields answered from its signatures. */
const SIGNATURE_FIELDS = new Set(['signatures', 'attestations', 'owners', 'firstSignedAt', 'lastSignedAt']);

/** The ledger's `signatures.withdrawn_by` → the GraphQL enum. */
const WITHDRAWAL_CAUSES: Readonly<Record<WithdrawalCause, SignatureWithdrawal>> = { delete: 'DELETE', reindex: 'REINDEX', crawl: 'CRAWL' };


/** The GraphQL enum → the ledger's `ownership_changes.kind`; null for no filter. */
export function kindIn(kind: OwnershipChangeKind | null | undefined): 'initial' | 'added' | null {
  return kind === 'INITIAL' ? 'initial' : kind === 'ADDED' ? 'added' : null;
}

async function mustLoad<T>(p: Promise<T | null>, what: string): Promise<T> {
  const v = await p;
  if (v === null) {
    // Rows are never deleted, so a dangling reference is a bug, not a user error (masked).
    throw new Error(`${what} not found`);
  }
  return v;
}

/** A signature that makes its verified signer an owner: not withdrawn (its artifact is still in the registry). */
const owns = (s: SignatureModel): boolean => s.identityId !== null && s.withdrawnAt === null;

/** An image's verified signers, in the order they first signed it. */
function signerIds(signatures: readonly SignatureModel[]): string[] {
  const first = new Map<string, number>();
  for (const s of signatures) {
    if (owns(s) && s.identityId !== null) {
      const t = s.signedAt.getTime();
      first.set(s.identityId, Math.min(t, first.get(s.identityId) ?? t));
    }
  }
  return [...first].sort((a, b) => a[1] - b[1]).map(([id]) => id);
}

/** The earliest (Math.min) or latest (Math.max) verified signature time, or null when none verified. */
function signedBound(signatures: readonly SignatureModel[], pick: (...xs: number[]) => number): Date | null {
  const times = signatures.filter(owns).map((s) => s.signedAt.getTime());
  return times.length === 0 ? null : new Date(pick(...times));
}

function ownerModels(stats: readonly ownership.RepositoryOwner[]): RepositoryOwnerModel[] {
  return stats.map((s) => ({ identityId: s.identityId, repositoryId: s.repositoryId, stats: s }));
}

export const resolvers: Resolvers = {
  Query: {
    async image(_, { ref }, { db, loaders }, info) {
      let parsed;
      try {
        parsed = parseImageReference(ref);
      } catch (err) {
        if (err instanceof ImageReferenceError) {
          throw badInput(err.message);
        }
        throw err;
      }
      const { registry, repository, digest, tag } = parsed;
      const at = digest !== null ? { digest } : { tag: tag ?? 'latest' };
      if (!selects(info, SIGNATURE_FIELDS)) {
        return images.find(db, registry, repository, at);
      }
      // Its signatures are asked for too: read them with the image, in one statement.
      const found = await images.findWithSignatures(db, registry, repository, at);
      if (found !== null) {
        loaders.primeImage(found.image, found.signatures);
      }
      return found?.image ?? null;
    },
    async identity(_, { subject, issuer }, { db }) {
      const found = await identities.bySubject(db, subject, issuer);
      if (found.length > 1) {
        throw createGraphQLError(
          `${subject} signs with ${found.length} issuers (${found.map((i) => i.issuer ?? 'none').join(', ')}): pass issuer`,
          { extensions: { code: 'AMBIGUOUS_IDENTITY' } },
        );
      }
      return found[0] ?? null;
    },
    async identities(_, { subject, search, first, after }, { db }) {
      if ((subject === null || subject === undefined) === (search === null || search === undefined)) {
        throw badInput('identities: pass exactly one of subject and search');
      }
      const match: identities.IdentityMatch = subject !== null && subject !== undefined ? { subject } : { prefix: searchPrefix(search, 4096) ?? '' };
      const cursor = decodeCursor('idn', after);
      const page = await identities.pageIdentities(db, match, pageSize(first), cursor);
      return rowsConnection('idn', page, () => identities.countIdentities(db, match), cursor);
    },
    repository: (_, { registry, name }, { db }) => repositories.find(db, normalizeRegistry(registry), name),
    async signaturesWithClaim(_, { name, value, verifiedOnly, first, after }, { db }) {
      if (name.length > 128 || value.length > 4096) {
        throw badInput('claim name or value too long');
      }
      const filter = { name, value, verifiedOnly: verifiedOnly !== false };
      const page = await signatures.pageWithClaim(db, filter, pageSize(first), decodeCursor('sig', after));
      return rowsConnection('sig', page, () => signatures.countWithClaim(db, filter), after ?? null);
    },
    async ownershipChanges(_, { first, after, registry, repository, kind }, { db }) {
      const filter = { registry: registry === null || registry === undefined ? null : normalizeRegistry(registry), repository, kind: kindIn(kind) };
      const page = await ownership.pageChanges(db, filter, pageSize(first), decodeCursor('own', after));
      return rowsConnection('own', page, () => ownership.countChanges(db, filter), after ?? null);
    },
  },

  Image: {
    reference: (m) => `${m.registry}/${m.repository}@${m.digest}`,
    status: (m) => upper(m.status),
    tags: (m, _, { loaders }) => loaders.tags.load(m.id),
    signatures: async (m, _, { loaders }) => (await loaders.signatures.load(m.id)).filter((s) => s.kind === 'signature'),
    attestations: async (m, _, { loaders }) => (await loaders.signatures.load(m.id)).filter((s) => s.kind === 'attestation'),
    owners: async (m, _, { loaders }) => present<IdentityModel>(await loaders.identity.loadMany(signerIds(await loaders.signatures.load(m.id)))),
    firstSignedAt: async (m, _, { loaders }) => signedBound(await loaders.signatures.load(m.id), Math.min),
    lastSignedAt: async (m, _, { loaders }) => signedBound(await loaders.signatures.load(m.id), Math.max),
    decision: (m, _, { loaders }) => loaders.decision.load(m.id),
    children: (m, _, { loaders }) => loaders.children.load(m.id),
    parents: (m, _, { loaders }) => loaders.parents.load(m.id),
    repository: (m, _, { loaders }) => mustLoad(loaders.repository.load(m.repositoryId), `repository ${m.repositoryId}`),
  },

  IndexChild: {
    image: (c, _, { loaders }) => mustLoad(loaders.image.load(c.childId), `manifest ${c.childId}`),
  },

  IndexParent: {
    index: (c, _, { loaders }) => mustLoad(loaders.image.load(c.indexId), `manifest ${c.indexId}`),
  },

  Signature: {
    status: (s) => upper(s.outcome),
    format: (s) => upper(s.format),
    kind: (s) => upper(s.kind),
    keySource: (s) => keySource(s.keySource),
    verified: (s) => s.outcome === 'verified',
    identity(s, _, { loaders }) {
      if (s.identityId !== null) {
        return loaders.identity.load(s.identityId);
      }
      // Claimed, never proven: shown for diagnosis, owns nothing (no id in the identities table).
      return s.subject === null ? null : { id: `claimed:${s.id}`, kind: s.subject.includes('@') ? 'email' : 'uri', subject: s.subject, issuer: s.issuer, firstSeenAt: s.firstSeenAt };
    },
    integratedTime: (s) => s.rekorIntegratedTime,
    timestampedAt: (s) => s.tsaTime,
    rekorUrl: (s) => rekorLink(s.rekorLogId, s.rekorLogIndex, 'search'),
    rekorApiUrl: (s) => rekorLink(s.rekorLogId, s.rekorLogIndex, 'api'),
    claims: (s) =>
      Object.entries(s.claims as Record<string, unknown>)
        .filter((e): e is [string, string] => typeof e[1] === 'string')
        .map(([name, value]) => ({ name, value, oid: fulcioClaimOid(name) })),
    withdrawnBy: (s) => (s.withdrawnBy === null ? null : WITHDRAWAL_CAUSES[s.withdrawnBy]),
    image: (s, _, { loaders }) => mustLoad(loaders.image.load(s.manifestId), `manifest ${s.manifestId}`),
  },

  Identity: {
    kind: (i) => upper(i.kind),
    images(i, { first, after, registry, repository, filter }, ctx, info) {
      const reg = registry === null || registry === undefined ? null : normalizeRegistry(registry);
      return imageConnection(ctx, info, { kind: 'identity', identityId: i.id, registry: reg, repository: repository ?? null }, filter, first, after);
    },
    async repositories(i, { first, after }, { db }) {
      const page = await ownership.pageChanges(db, { identityId: i.id }, pageSize(first), decodeCursor('own', after));
      return connection(
        'own',
        page,
        (rows) => Promise.resolve(rows.map((r) => ({ identityId: r.identityId, repositoryId: r.repositoryId, stats: null }))),
        () => ownership.countChanges(db, { identityId: i.id }),
        after ?? null,
      );
    },
    firstSignedAt: async (i, _, { loaders }) => (await loaders.identityStats.load(i.id))?.firstSignedAt ?? null,
    lastSignedAt: async (i, _, { loaders }) => (await loaders.identityStats.load(i.id))?.lastSignedAt ?? null,
  },

  Repository: {
    images: (r, { first, after, filter }, ctx, info) => imageConnection(ctx, info, { kind: 'repository', repositoryId: r.id }, filter, first, after),
    tagAt: (r, { tag, at }, { db }) => tags.moveAt(db, r.id, tag, at),
    tags: (r, _, { db }) => tags.byRepositoryId(db, r.id),
    async tagHistory(r, { tag, first, after }, { db }) {
      const t = tag ?? null;
      const page = await tags.pageMoves(db, r.id, t, pageSize(first), decodeCursor('tag', after));
      return rowsConnection('tag', page, () => tags.countMoves(db, r.id, t), after ?? null);
    },
    owners: async (r, _, { loaders }) => ownerModels(await loaders.repositoryOwners.load(r.id)),
    async ownershipChanges(r, { first, after }, { db }) {
      const page = await ownership.pageChanges(db, { repositoryId: r.id }, pageSize(first), decodeCursor('own', after));
      return rowsConnection('own', page, () => ownership.countChanges(db, { repositoryId: r.id }), after ?? null);
    },
  },

  Tag: {
    image: (t, _, { loaders }) => loaders.imageByDigest.load({ repositoryId: t.repositoryId, digest: t.digest }),
  },

  TagMove: {
    tag: (t) => t.name,
    image: (t, _, { loaders }) => loaders.imageByDigest.load({ repositoryId: t.repositoryId, digest: t.digest }),
  },

  RepositoryOwner: {
    identity: (o, _, { loaders }) => mustLoad(loaders.identity.load(o.identityId), `identity ${o.identityId}`),
    repository: (o, _, { loaders }) => mustLoad(loaders.repository.load(o.repositoryId), `repository ${o.repositoryId}`),
    firstSignedAt: async (o, _, { loaders }) => (await ownerStats(o, loaders))?.firstSignedAt ?? null,
    lastSignedAt: async (o, _, { loaders }) => (await ownerStats(o, loaders))?.lastSignedAt ?? null,
    imageCount: async (o, _, { loaders }) => (await ownerStats(o, loaders))?.imageCount ?? 0,
  },

  OwnershipChange: {
    kind: (c: OwnershipChangeModel) => (c.kind === 'added' ? 'ADDED' : 'INITIAL'),
    repository: (c, _, { loaders }) => mustLoad(loaders.repository.load(c.repositoryId), `repository ${c.repositoryId}`),
    identity: (c, _, { loaders }) => mustLoad(loaders.identity.load(c.identityId), `identity ${c.identityId}`),
    image: (c, _, { loaders }) => mustLoad(loaders.image.load(c.manifestId), `manifest ${c.manifestId}`),
    previousOwners: async (c, _, { loaders }) => present<IdentityModel>(await loaders.identity.loadMany(c.previousOwnerIds)),
  },

  Decision: {
    reason: (d) => upper(d.reason),
    mode: (d) => upper(d.mode),
    current: (d, _, { policyVersion }) => d.policyVersion === policyVersion,
    expiresAt: (d) => (d.expiresAt === null || d.expiresAt === undefined ? null : new Date(d.expiresAt)),
    attestations: (d) => attestationResults(d.attestations),
    image: (d, _, { loaders }) => mustLoad(loaders.image.load(d.manifestId), `manifest ${d.manifestId}`),
  },

  ImageConnection: { totalCount: (c) => c.count() },
  RepositoryOwnershipConnection: { totalCount: (c) => c.count() },
  TagMoveConnection: { totalCount: (c) => c.count() },
  OwnershipChangeConnection: { totalCount: (c) => c.count() },
  SignatureConnection: { totalCount: (c) => c.count() },
  IdentityConnection: { totalCount: (c) => c.count() },
};

/** Null when the identity entered the repository but none of its signatures there verifies any more. */
async function ownerStats(o: RepositoryOwnerModel, loaders: Loaders): Promise<identities.SigningStats | null> {
  return o.stats ?? loaders.ownerStats.load({ identityId: o.identityId, repositoryId: o.repositoryId });
}
