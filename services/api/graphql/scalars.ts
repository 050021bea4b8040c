import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { badInput } from './pagination.ts';

// The two custom scalars, written here rather than taken from graphql-scalars: its `BigInt`
// serialises to a JSON number (or patches BigInt.prototype.toJSON), which loses precision above
// 2^53 in every JSON client, and its `DateTime` accepts offsets we would then have to normalise.
// Signet wants exactly: instants out as RFC 3339 UTC strings, 64-bit integers as decimal strings.

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

function toDate(value: unknown): Date {
  if (typeof value === 'string' && RFC3339.test(value)) {
    const d = new Date(value);
    if (!Number.isNaN(d.getTime())) {
      return d;
    }
  }
  throw badInput(`DateTime: ${JSON.stringify(String(value).slice(0, 40))} is not an RFC 3339 date-time (e.g. 2026-11-29T13:14:00Z)`);
}

export const DateTime = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize(value) {
    const d = value instanceof Date ? value : toDate(value);
    return d.toISOString();
  },
  parseValue: toDate,
  parseLiteral(ast: ValueNode) {
    return toDate(ast.kind === Kind.STRING ? ast.value : undefined);
  },
});

const INTEGER = /^-?(0|[1-9]\d{0,18})$/;

function toBigInt(value: unknown): string {
  const s = typeof value === 'bigint' ? value.toString() : typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof s === 'string' && INTEGER.test(s) && BigInt(s) <= 9223372036854775807n && BigInt(s) >= -9223372036854775808n) {
    return s;
  }
  throw badInput(`BigInt: ${JSON.stringify(String(value).slice(0, 40))} is not a 64-bit integer as a decimal string`);
}

export const BigIntScalar = new GraphQLScalarType<string, string>({
  name: 'BigInt',
  serialize: toBigInt,
  parseValue: toBigInt,
  parseLiteral(ast: ValueNode) {
    return toBigInt(ast.kind === Kind.STRING || ast.kind === Kind.INT ? ast.value : undefined);
  },
});
