import * as admissions from '../../common/db/queries/admissions.ts';
import type { AdmissionResult as Result } from '../../common/domain/admission.ts';
import { decodeCursor, pageSize, rowsConnection } from './pagination.ts';
import type { AdmissionResult, DecisionMode, QueryAdmissionsArgs, Resolvers } from './types.generated.ts';

// The admission record over GraphQL: `Query.admissions` and its types (schema/signet.graphql,
// section "Admission record").

function filterOf(args: QueryAdmissionsArgs): admissions.AdmissionFilter {
  return {
    namespace: args.namespace ?? null,
    result: args.result === null || args.result === undefined ? null : (args.result.toLowerCase() as Result),
    reason: args.reason ?? null,
    image: args.image ?? null,
    since: args.since ?? null,
    until: args.until ?? null,
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
    result: (r) => r.result.toUpperCase() as AdmissionResult,
    images: (r) => r.images.map((i) => ({ ...i, mode: i.mode.toUpperCase() as DecisionMode })),
  },
  AdmissionRecordConnection: { totalCount: (c) => c.count() },
};
