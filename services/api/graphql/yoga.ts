import { readFileSync } from 'node:fs';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type DocumentNode, type ExecutionArgs, getOperationAST, type GraphQLError, type GraphQLSchema, OperationTypeNode } from 'graphql';
import { createPubSub, createSchema, createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { Db } from '../../common/db/client.ts';
import * as ownership from '../../common/db/queries/ownership.ts';
import * as repositories from '../../common/db/queries/repositories.ts';
import type { LedgerEvent } from '../../common/events.ts';
import type { Logger } from '../../common/logger.ts';
import { bearerToken, tokenDigests, tokenMatches } from '../tokens.ts';
import { admissionResolvers } from './admissions.ts';
import { createLoaders, type GraphqlContext, type OwnershipChangeModel } from './models.ts';
import type { Policy } from '../../common/policy/policy.ts';
import { explainResolvers } from './explain.ts';
import { browseResolvers } from './browse.ts';
import { kindIn, resolvers } from './resolvers.ts';
import { BigIntScalar, DateTime } from './scalars.ts';
import { controlCharacterGuard } from './input-guard.ts';
import type { SubscriptionOwnershipChangedArgs } from './types.generated.ts';

const SDL = readFileSync(new URL('../../../schema/signet.graphql', import.meta.url), 'utf8');

/** Abuse limits (graphql-armor); together with the page cap (100) they bound any one query's work. */
export const GRAPHQL_LIMITS = { maxDepth: 12, maxCost: 5_000, maxAliases: 15, maxDirectives: 10, maxTokens: 2_000 } as const;

export interface GraphqlDeps {
  readonly db: Db;
  readonly log: Logger;
  /** Bearer tokens allowed to read; empty leaves the API open. */
  readonly tokens: readonly string[];
  /** The policy version `Image.decision` answers under. */
  readonly policyVersion: () => string;
  /** The policy `explain` answers under. */
  readonly policy: () => Policy;
  /** Where this replica's ledger events arrive (the decision table's feed), or null: no subscriptions. */
  readonly ledgerEvents: ((listener: (event: LedgerEvent) => void) => void) | null;
}

/** Constant-time check of `Authorization: Bearer <token>` against every configured token (digests). */
export function tokenAllowed(header: string | undefined, tokens: readonly Buffer[]): boolean {
  return tokenMatches(bearerToken(header), tokens);
}

/** `POST/GET /graphql` (graphql-yoga), GraphiQL in the browser, SSE subscriptions. */
export function registerGraphql(app: FastifyInstance, deps: GraphqlDeps): void {
  const pubsub = createPubSub<{ ownership: [id: string] }>();
  deps.ledgerEvents?.((event) => {
    if (event.type === 'ownership') {
      pubsub.publish('ownership', event.id);
    }
  });

  const schema = createSchema<GraphqlContext>({
    typeDefs: SDL,
    resolvers: [
      resolvers,
      explainResolvers(deps.policy),
      admissionResolvers,
      browseResolvers,
      { DateTime, BigInt: BigIntScalar },
      {
        Subscription: {
          ownershipChanged: {
            subscribe: (_: unknown, args: SubscriptionOwnershipChangedArgs, ctx: GraphqlContext) => ownershipChanges(pubsub.subscribe('ownership'), args, ctx.db),
            resolve: (change: OwnershipChangeModel) => change,
          },
        },
      },
    ],
  });

  const log = deps.log;
  const yoga = createYoga<object, GraphqlContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: { title: 'Signet — ownership ledger' },
    // GraphiQL bundled into the page (no CDN): it works air-gapped, as Signet does.
    renderGraphiQL,
    maskedErrors: true,
    logging: {
      debug: (...args: unknown[]) => log.debug({ args }, 'graphql'),
      info: (...args: unknown[]) => log.info({ args }, 'graphql'),
      warn: (...args: unknown[]) => log.warn({ args }, 'graphql'),
      error: (...args: unknown[]) => log.error({ err: args[0] }, 'graphql error'),
    },
    context: () => {
      const policyVersion = deps.policyVersion();
      return { db: deps.db, loaders: createLoaders(deps.db, policyVersion), policyVersion };
    },
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: GRAPHQL_LIMITS.maxDepth },
        costLimit: { maxCost: GRAPHQL_LIMITS.maxCost },
        maxAliases: { n: GRAPHQL_LIMITS.maxAliases },
        maxDirectives: { n: GRAPHQL_LIMITS.maxDirectives },
        maxTokens: { n: GRAPHQL_LIMITS.maxTokens },
        blockFieldSuggestion: { enabled: true },
      }),
      controlCharacterGuard(),
    ],
  });

  const tokens = tokenDigests(deps.tokens);
  app.route({
    url: '/graphql',
    method: ['GET', 'POST', 'OPTIONS'],
    async handler(req, reply) {
      // The GraphiQL page itself is public (it holds no data); every operation needs a token when tokens are set.
      const graphiql = req.method === 'GET' && !('query' in (req.query as object)) && (req.headers.accept ?? '').includes('text/html');
      if (tokens.length > 0 && !graphiql && req.method !== 'OPTIONS' && !tokenAllowed(req.headers.authorization, tokens)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="signet"')
          .send({ errors: [{ message: 'a valid API token is required (Authorization: Bearer <token>; see SIGNET_API_TOKENS)', extensions: { code: 'UNAUTHENTICATED' } }] });
      }
      if (req.method === 'POST') {
        const answered = await answerPlainQuery(yoga, req);
        if (answered !== null) {
          return reply.header('content-type', 'application/json; charset=utf-8').send(answered);
        }
      }
      const response = await yoga.handleNodeRequestAndResponse(req, reply, {});
      response.headers.forEach((value, key) => {
        void reply.header(key, value);
      });
      reply.status(response.status);
      return reply.send(response.body);
    },
  });
}

/** The media ranges of an Accept header under which yoga answers `application/json`. */
const PLAIN_ACCEPT = /^\s*(application\/json|\*\/\*|application\/\*)\s*(;[^,]*)?$/i;

/** What envelop hands a request (`getEnveloped`), as this module uses it. */
interface Enveloped {
  readonly parse: (source: string) => DocumentNode;
  readonly validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  readonly contextFactory: () => Promise<unknown>;
  readonly execute: (args: ExecutionArgs) => Promise<unknown>;
  readonly schema: GraphQLSchema;
}

interface PlainBody {
  readonly query: string;
  readonly variables?: Record<string, unknown> | null;
  readonly operationName?: string | null;
}

/** A JSON body holding a query, its variables and operation name, and nothing else (no batch, no extensions). */
function plainBody(body: unknown): PlainBody | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return null;
  }
  const b = body as Record<string, unknown>;
  const known = Object.keys(b).every((k) => k === 'query' || k === 'variables' || k === 'operationName');
  const variables = b.variables === undefined || b.variables === null || (typeof b.variables === 'object' && !Array.isArray(b.variables));
  const operationName = b.operationName === undefined || b.operationName === null || typeof b.operationName === 'string';
  return known && typeof b.query === 'string' && variables && operationName ? (b as unknown as PlainBody) : null;
}

/**
 * The common request answered without yoga's HTTP layer: a POST of a JSON query (no Origin, whose
 * CORS is yoga's; an Accept yoga answers with `application/json`) that parses, validates and runs
 * without an error. It goes through the same envelop as yoga's own (the parser and validation
 * caches, graphql-armor, the control-character guard, masked errors) and its answer is the bytes
 * yoga gives for it. That saves the WHATWG Request and Response yoga builds around every request:
 * about a third of a small query's CPU (`image(ref)`: 2,400 → 3,200 requests/s, profiled). Null for
 * anything else, errors included, which yoga then answers (a query that failed runs again there:
 * they only read) with its own status codes and formats.
 */
async function answerPlainQuery(yoga: YogaServerInstance<object, GraphqlContext>, req: FastifyRequest): Promise<string | null> {
  const accept = req.headers.accept;
  const body = plainBody(req.body);
  if (body === null || req.headers.origin !== undefined || (accept !== undefined && !accept.split(',').every((range) => PLAIN_ACCEPT.test(range)))) {
    return null;
  }
  const { parse, validate, contextFactory, execute, schema } = yoga.getEnveloped({ params: body } as never) as Enveloped;
  let document: DocumentNode;
  try {
    // graphql-armor's limits throw from validation rather than report.
    document = parse(body.query);
    if (getOperationAST(document, body.operationName)?.operation !== OperationTypeNode.QUERY || validate(schema, document).length > 0) {
      return null;
    }
  } catch {
    return null;
  }
  let result: unknown;
  try {
    result = await execute({ document, schema, variableValues: body.variables ?? {}, operationName: body.operationName ?? null, contextValue: await contextFactory() });
  } catch {
    return null;
  }
  if (result === null || typeof result !== 'object' || Symbol.asyncIterator in result || 'errors' in result) {
    return null;
  }
  return JSON.stringify(result);
}

async function* ownershipChanges(ids: AsyncIterable<string>, args: SubscriptionOwnershipChangedArgs, db: Db): AsyncGenerator<OwnershipChangeModel> {
  const kind = kindIn(args.kind);
  for await (const id of ids) {
    const [change] = await ownership.changesByIds(db, [id]);
    if (change === undefined || (kind !== null && change.kind !== kind)) {
      continue;
    }
    const registry = args.registry?.toLowerCase() ?? null;
    const repository = args.repository ?? null;
    if (registry !== null || repository !== null) {
      const [repo] = await repositories.byIds(db, [change.repositoryId]);
      if (repo === undefined || (registry !== null && repo.registry !== registry) || (repository !== null && repo.name !== repository)) {
        continue;
      }
    }
    yield change;
  }
}
