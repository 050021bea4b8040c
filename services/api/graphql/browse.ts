import * as decisions from '../../common/db/queries/decisions.ts';
import * as deliveries from '../../common/db/queries/deliveries.ts';
import * as registries from '../../common/db/queries/registries.ts';
import * as repositories from '../../common/db/queries/repositories.ts';
import type { DecisionReason as LedgerDecisionReason } from '../../common/domain/decision.ts';
import { normalizeRegistry } from '../../common/domain/image-ref.ts';
import { imageConnection } from './images.ts';
import type { SignerCountModel } from './models.ts';
import { badInput, decodeCursor, pageSize, rowsConnection, searchPrefix } from './pagination.ts';
import type { Resolvers } from './types.generated.ts';

// Browsing the ledger: registries, repositories by prefix, denials with filters, the deliveries
// naming a digest, an image's decision history, and a registry's overview (the /ui pages).

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const MAX_DAYS = 366;

function host(registry: string | null | undefined): string | null {
  return registry === null || registry === undefined ? null : normalizeRegistry(registry);
}

function digestArg(digest: string): string {
  if (!DIGEST.test(digest)) {
    throw badInput(`digest must be sha256:<64 lowercase hex>, got ${JSON.stringify(digest.slice(0, 80))}`);
  }
  return digest;
}

function deliveryConnection(db: Parameters<typeof deliveries.pageNaming>[0], digest: string, first: number | null | undefined, after: string | null | undefined) {
  const cursor = decodeCursor('dlv', after);
  return deliveries.pageNaming(db, digest, pageSize(first), cursor).then((page) => rowsConnection('dlv', page, () => deliveries.countNaming(db, digest), cursor));
}

export const browseResolvers: Resolvers = {
  Query: {
    async registries(_, { search, first, after }, { db }) {
      const prefix = searchPrefix(search);
      const cursor = decodeCursor('reg', after);
      const page = await registries.pageRegistries(db, prefix === null ? null : prefix.toLowerCase(), pageSize(first), cursor);
      return rowsConnection('reg', page, () => registries.countRegistries(db, prefix === null ? null : prefix.toLowerCase()), cursor);
    },
    registry: (_, { host: h }, { db }) => registries.find(db, normalizeRegistry(h)),
    async repositories(_, { registry, search, first, after }, { db }) {
      const reg = host(registry);
      const prefix = searchPrefix(search);
      const cursor = decodeCursor('rep', after);
      const page = await repositories.pageRepositories(db, reg, prefix, pageSize(first), cursor);
      return rowsConnection('rep', page, () => repositories.countRepositories(db, reg, prefix), cursor);
    },
    deliveries: (_, { digest, first, after }, { db }) => deliveryConnection(db, digestArg(digest), first, after),
    async denials(_, { first, after, registry, repository, reason }, { db, policyVersion }) {
      const filter = { registry: host(registry), repository: repository ?? null, reasons: reason?.map((r) => r.toLowerCase() as LedgerDecisionReason) ?? null };
      const cursor = decodeCursor('dny', after);
      const page = await decisions.pageDenials(db, policyVersion, filter, pageSize(first), cursor);
      return rowsConnection('dny', page, () => decisions.countDenials(db, policyVersion, filter), cursor);
    },
  },

  Image: {
    deliveries: (m, { first, after }, { db }) => deliveryConnection(db, m.digest, first, after),
    async decisionHistory(m, { first, after }, { db }) {
      const cursor = decodeCursor('dec', after);
      const page = await decisions.history(db, m.id, pageSize(first), cursor === null ? 0 : Number(cursor));
      return rowsConnection('dec', page, () => decisions.countHistory(db, m.id), cursor);
    },
  },

  Registry: {
    async repositories(g, { search, first, after }, { db }) {
      const prefix = searchPrefix(search);
      const cursor = decodeCursor('rep', after);
      const page = await repositories.pageRepositories(db, g.host, prefix, pageSize(first), cursor);
      return rowsConnection('rep', page, () => repositories.countRepositories(db, g.host, prefix), cursor);
    },
    images: (g, { first, after, filter }, ctx, info) => imageConnection(ctx, info, { kind: 'registry', host: g.host }, filter, first, after),
    summary: (g, _, { db, policyVersion }) => registries.summary(db, g.id, policyVersion),
    topSigners(g, { first }, { db }) {
      return registries.topSigners(db, g.id, first === null || first === undefined ? 10 : pageSize(first));
    },
    outcomes(g, { days }, { db, policyVersion }) {
      const n = days ?? 30;
      if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) {
        throw badInput(`days must be between 1 and ${MAX_DAYS}, got ${n}`);
      }
      return registries.outcomes(db, g.id, policyVersion, n);
    },
  },

  SignerCount: {
    identity: async (c: SignerCountModel, _, { loaders }) => {
      const identity = await loaders.identity.load(c.identityId);
      if (identity === null) {
        // Rows are never deleted: a dangling reference is a bug, not a user error (masked).
        throw new Error(`identity ${c.identityId} not found`);
      }
      return identity;
    },
  },

  RegistryConnection: { totalCount: (c) => c.count() },
  RepositoryConnection: { totalCount: (c) => c.count() },
  DecisionConnection: { totalCount: (c) => c.count() },
  WebhookDeliveryConnection: { totalCount: (c) => c.count() },
};
