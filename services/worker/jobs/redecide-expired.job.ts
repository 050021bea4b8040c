import { RedecideExpiredJob } from '../../common/jobs/redecide-expired.ts';
import type { Decider } from '../../core/decider.ts';
import { implementJob } from '../kit.ts';

/** Decides again the images whose decisions expired (an attestation condition read the time). */
export function redecideExpiredJob(deps: { readonly decider: Decider }) {
  return implementJob(RedecideExpiredJob, {
    async handle() {
      return { decided: await deps.decider.decideExpired() };
    },
    result: (r) => (r.decided > 0 ? 'redecided' : 'nothing_due'),
    summary: (r, data) => ({ decided: r.decided, due: new Date(data.at).toISOString() }),
  });
}
