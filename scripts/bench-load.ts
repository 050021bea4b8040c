// Load generator for the benchmarks, run as its own process so it does not share the server's
// event loop: autocannon against one URL, each request's body drawn at random from a list.
//
//   node scripts/bench-load.ts options.json   # {"url":…,"bodies":[…],"connections":4,"seconds":10,"rate":200,"headers":{…}}
//
// Prints autocannon's figures as JSON: { rps, p50, p90, p99, max, errors, non2xx }.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

interface Options {
  url: string;
  bodies: string[];
  connections: number;
  seconds: number;
  /** Requests per second over all connections; omitted: as fast as the server answers. */
  rate?: number;
  headers?: Record<string, string>;
  /** POST (the default) sends a body from `bodies`; GET sends none. */
  method?: 'GET' | 'POST';
}

const opts = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Options;
const run = (seconds: number) =>
  autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: seconds,
    ...(opts.rate === undefined ? {} : { overallRate: opts.rate }),
    requests: [
      opts.method === 'GET'
        ? { method: 'GET', ...(opts.headers === undefined ? {} : { headers: opts.headers }) }
        : {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...opts.headers },
            setupRequest: (req) => ({ ...req, body: opts.bodies[Math.floor(Math.random() * opts.bodies.length)] ?? '' }),
          },
    ],
  });
await run(2); // warm-up: JIT, connection pools, Postgres buffers
const r = await run(opts.seconds);
console.log(
  JSON.stringify({
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    errors: r.errors,
    non2xx: r.non2xx,
  }),
);
