import * as admissions from '../../common/db/queries/admissions.ts';
import type { AdmissionResult as Result } from '../../common/domain/admission.ts';
import { badInput, decodeCursor, pageSize, rowsConnection } from './pagination.ts';
import type { AdmissionResult, DecisionMode, QueryAdmissionsArgs, Resolvers } from './types.generated.ts';

// The admission record over GraphQL: `Query.admissions` and its types (schema/signet.graphql,
// section "Admission record").

/** An RFC 3339 time argument, or a clear error naming it. */
function timeArg(name: string, value: string | null | undefined): Date | null {
  if (value === null || value === undefined) {
    return null;
  }
  const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i.test(value) ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(t.getTime())) {
    throw badInput(`${name}: expected an RFC 3339 time such as 2026-11-30T08:00:00Z, got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return t;
}

function filterOf(args: QueryAdmissionsArgs): admissions.AdmissionFilter {
  return {
    namespace: args.namespace ?? null,
    result: args.result === null || args.result === undefined ? null : (args.result.toLowerCase() as Result),
    reason: args.reason ?? null,
    image: args.image ?? null,
    since: timeArg('since', args.since),
    until: timeArg('until', args.until),
  };
}

export const admissionResolvers: Resolvers = {
  Query: {
    async admissions(_, args, { db }) {
      const filter = filterOf(args);
      const after = decodeCursor('adm', args.after);
      const page = await admissions.pageRecords(db, filter, pageSize(args.first), after);
      return rowsConnection('adm', page, () => admissions.countRecords(db, filter), after);
    },
  },
  AdmissionRecord: {
    at: (r) => r.at.toISOString(),
    recordedAt: (r) => r.recordedAt.toISOString(),
    result: (r) => r.result.toUpperCase() as AdmissionResult,
    images: (r) => r.images.map((i) => ({ ...i, mode: i.mode.toUpperCase() as DecisionMode })),
  },
  AdmissionRecordConnection: { totalCount: (c) => c.count() },
};
