// The standard GraphQL queries of the benchmarks (bench-graphql, bench-scale), each request naming
// a random image or identity from a sample of the ledger.
import { sql, type Kysely } from 'kysely';
import type { DB } from '../../services/common/db/schema.generated.ts';

/** How many images and identities the request bodies are drawn from. */
export const GRAPHQL_SAMPLE = 2_000;

const imageQuery = `query($ref: String!) { image(ref: $ref) { digest owners { subject issuer } signatures { status rekorLogIndex identity { subject } } } }`;
const identityQuery = `query($s: String!, $i: String) { identity(subject: $s, issuer: $i) { subject images(first: 50) { totalCount edges { cursor node { digest reference } } } } }`;

/** Request bodies per query, keyed by the name the reports give it. */
export type GraphqlBodies = Record<'image(ref){owners signatures}' | 'identity{images(first:50)}', string[]>;

/** Samples images (about 5% of the manifests' pages) and identities, and builds each query's bodies. */
export async function graphqlBodies(db: Kysely<DB>): Promise<GraphqlBodies> {
  const images = await sql<{ ref: string }>`
    SELECT g.host || '/' || r.name || '@' || m.digest AS ref
    FROM manifests m TABLESAMPLE SYSTEM (5) JOIN repositories r ON r.id = m.repository_id JOIN registries g ON g.id = r.registry_id
    LIMIT ${GRAPHQL_SAMPLE}`.execute(db);
  const identities = await sql<{ subject: string; issuer: string | null }>`
    SELECT subject, issuer FROM identities ORDER BY random() LIMIT ${GRAPHQL_SAMPLE}`.execute(db);
  return {
    'image(ref){owners signatures}': images.rows.map((r) => JSON.stringify({ query: imageQuery, variables: { ref: r.ref } })),
    'identity{images(first:50)}': identities.rows.map((r) => JSON.stringify({ query: identityQuery, variables: { s: r.subject, i: r.issuer } })),
  };
}

/** One request of each query, to be sure they answer what they should; throws otherwise. */
export async function checkGraphql(url: string, bodies: GraphqlBodies): Promise<void> {
  for (const [name, list] of [['image', bodies['image(ref){owners signatures}']], ['identity', bodies['identity{images(first:50)}']]] as const) {
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: list[0] });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown };
    if (res.status !== 200 || body.errors !== undefined || body.data?.[name] === null) {
      throw new Error(`${name} query did not answer: ${JSON.stringify(body).slice(0, 300)}`);
    }
  }
}
