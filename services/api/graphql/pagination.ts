import { createGraphQLError } from 'graphql-yoga';
import type { Page } from '../../common/db/queries/fragments.ts';
import type { ConnectionModel } from './models.ts';

export const DEFAULT_PAGE = 20;
export const MAX_PAGE = 100;

/** An expected error, shown to the client (yoga masks everything else). Made by yoga's own GraphQLError class. */
export function badInput(message: string): Error {
  return createGraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

/** `first`, capped: a page larger than {@link MAX_PAGE} is refused, not silently shortened. */
export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) {
    return DEFAULT_PAGE;
  }
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw badInput(`first must be between 1 and ${MAX_PAGE}, got ${first}`);
  }
  return first;
}

/** Cursors are opaque: base64url of `<kind>:<row id>`. */
export function encodeCursor(kind: string, id: string): string {
  return Buffer.from(`${kind}:${id}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | null | undefined): string | null {
  if (cursor === null || cursor === undefined) {
    return null;
  }
  const decoded = cursor.length <= 64 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const m = /^([a-z]+):([0-9]{1,19})$/.exec(decoded);
  if (m?.[1] !== kind || m[2] === undefined) {
    throw badInput(`after: ${JSON.stringify(cursor.slice(0, 80))} is not a cursor of this list`);
  }
  return m[2];
}

/**
 * Builds a connection from one page of rows keyed by id, their nodes, and a lazy count. Pages go
 * forward only: `hasPreviousPage` is whether the page started after a cursor (`after`).
 */
export async function connection<R extends { id: string }, T>(
  kind: string,
  page: Page<R>,
  load: (rows: R[]) => Promise<T[]>,
  count: () => Promise<number>,
  after: string | null = null,
): Promise<ConnectionModel<T>> {
  const nodes = await load(page.rows);
  const edges = nodes.map((node, i) => ({ cursor: encodeCursor(kind, page.rows[i]?.id ?? ''), node }));
  return {
    edges,
    nodes,
    pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: after !== null, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
    count,
  };
}

/** A connection over rows that are the nodes themselves. */
export function rowsConnection<R extends { id: string }>(kind: string, page: Page<R>, count: () => Promise<number>, after: string | null): Promise<ConnectionModel<R>> {
  return connection(kind, page, (rows) => Promise.resolve(rows), count, after);
}

/** A prefix to search by: null when not given; refused when empty or longer than anything stored. */
export function searchPrefix(search: string | null | undefined, max = 255): string | null {
  if (search === null || search === undefined) {
    return null;
  }
  if (search.length === 0 || search.length > max) {
    throw badInput(`search must be 1 to ${max} characters`);
  }
  return search;
}
