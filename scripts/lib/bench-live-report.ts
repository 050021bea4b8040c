// The live-verification benchmark's part of BENCHMARKS.md: its goal rows and section 2, rendered
// from scripts/bench-live.ts's JSON. Shared by `npm run bench` and `npm run bench -- --only live`.
/* eslint-disable @typescript-eslint/no-unsafe-member-access -- renders the benchmark's own JSON */

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- the benchmark's own JSON

const ms = (v: unknown) => (typeof v === 'number' ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) : String(v));
const ok = (met: boolean) => (met ? 'met' : '**not met**');

/** The goals table's rows: the loopback floor, and live ÷ Signet at each round trip (the goal at a public registry's). */
export function liveGoalRows(live: Json): string[][] {
  return [
    ['live verification ÷ Signet, p50, on loopback (the CPU floor; sequential requests)', '—', `${live.liveOverSignet.p50 as number}×`, ''],
    ...(live.network as Json[]).map((n) => [
      `live verification ÷ Signet, p50, registry at ${n.rttMs as number} ms round trip (median of ${n.reps as number}, spread)`,
      (n.rttMs as number) >= 50 ? '≥ 1000×' : '—',
      `${n.liveOverSignet.median as number}× (${n.liveOverSignet.min as number}–${n.liveOverSignet.max as number})`,
      (n.rttMs as number) >= 50 ? ok(n.liveOverSignet.median >= 1000) : '',
    ]),
  ];
}

/** Section 2 of BENCHMARKS.md. */
export function liveSection(live: Json, table: (head: string[], body: string[][]) => string): string {
  return `## 2. Live verification baseline (\`scripts/bench-live.ts\`)

What admission-time verifiers pay per request: resolve the tag, fetch the \`.sig\` manifest and its
payload from a real local docker-registry, verify with sigstore (Signet's own registry client and
verifier, no cache). Against Signet's \`POST /verify\` for the same ${live.images as number} keyless-signed images.
Loopback and a local registry make this the *cheapest* live verification can be: real ones cross
a network to the registry (and often Rekor and TUF).

${table(
  ['', 'Signet p50 / p99 ms', 'live p50 / p99 ms', 'live ÷ Signet'],
  [
    ['sequential requests', `${ms(live.sequentialMs.signet.p50)} / ${ms(live.sequentialMs.signet.p99)}`, `${ms(live.sequentialMs.live.p50)} / ${ms(live.sequentialMs.live.p99)}`, `${live.liveOverSignet.p50 as number}× / ${live.liveOverSignet.p99 as number}×`],
    [`${live.ratePerSecond as number} requests/s (whole ms)`, `${ms(live.atRate.signet.p50)} / ${ms(live.atRate.signet.p99)}`, `${ms(live.atRate.live.p50)} / ${ms(live.atRate.live.p99)}`, ''],
    ...(live.network as Json[]).map((n) => [
      `registry at ${n.rttMs as number} ms round trip, ${n.requests as number} sequential requests (median of ${n.reps as number})`,
      `${ms(n.signetMs.p50)} / ${ms(n.signetMs.p99)}`,
      `${ms(n.liveMs.p50)} / ${ms(n.liveMs.p99)}`,
      `${n.liveOverSignet.median as number}× (${n.liveOverSignet.min as number}–${n.liveOverSignet.max as number})`,
    ]),
  ],
)}

With a network, the live verifier reaches the registry through a TCP proxy that delays every chunk
by half the round trip each way (a new connection by one round trip), and first does what
go-containerregistry's remote (cosign and the cosign-based admission providers) does: a \`GET /v2/\`
ping and a token request to the registry's token service, behind the same delay. Connections stay
open between requests, as in one verifier process. The round trips: 2 ms for a registry in the
cluster's cloud region (published inter-zone round trips are 1–2 ms), 80 ms for a public registry
across an ocean (published us-east ↔ eu-west round trips are 70–90 ms). No Rekor or TUF call is
counted, so these are still floors.
`;
}
