// Load generator for the benchmarks, run as its own process so it does not share the server's
// event loop. Three modes:
// - saturation (no `rate`): autocannon, `connections` closed-loop connections, as fast as the
//   server answers — throughput.
// - fixed rate (`rate`): autocannon limited to `rate` requests/s over all connections. Its
//   latencies are whole milliseconds (truncated): a p99 of 0 means under 1 ms.
// - precise fixed rate (`rate` and `precise`): an open-loop generator on node:http keep-alive
//   sockets that starts a request every 1/rate s whether or not earlier ones finished, timed with a
//   sub-millisecond clock. It is a slower client than autocannon: keep its rate moderate (a few
//   thousand per second at most), or the client, not the server, is what is measured.
// Each POST's body is drawn at random from `bodies`. HTTPS URLs accept any certificate.
//
//   node scripts/bench-load.ts options.json   # {"url":…,"bodies":[…],"connections":4,"seconds":10,"rate":200,"headers":{…},"method":"POST"}
//
// Prints JSON: { rps, p50, p90, p99, max (ms), errors, non2xx }.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import autocannon from 'autocannon';
import type { Load } from './lib/bench.ts';

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
  /** With `rate`: the open-loop generator with sub-millisecond timing instead of autocannon. */
  precise?: boolean;
  /** Seconds of unmeasured load first (JIT, connection pools, Postgres buffers); default 2. */
  warmup?: number;
}

type Figures = Load;

const opts = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Options;
const url = new URL(opts.url);
const tls = url.protocol === 'https:';
const pick = () => opts.bodies[Math.floor(Math.random() * opts.bodies.length)] ?? '';

function closedLoop(seconds: number) {
  return autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: seconds,
    ...(opts.rate === undefined ? {} : { overallRate: opts.rate }),
    ...(tls ? { tlsOptions: { rejectUnauthorized: false } } : {}),
    requests: [
      opts.method === 'GET'
        ? { method: 'GET', ...(opts.headers === undefined ? {} : { headers: opts.headers }) }
        : { method: 'POST', headers: { 'content-type': 'application/json', ...opts.headers }, setupRequest: (req) => ({ ...req, body: pick() }) },
    ],
  });
}

async function openLoop(seconds: number, rate: number): Promise<Figures> {
  const agent = tls
    ? new https.Agent({ keepAlive: true, maxSockets: opts.connections, rejectUnauthorized: false })
    : new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const request = tls ? https.request : http.request;
  const latencies: number[] = [];
  let errors = 0;
  let non2xx = 0;
  const inflight = new Set<Promise<void>>();
  const one = () =>
    new Promise<void>((resolve) => {
      const body = opts.method === 'GET' ? null : pick();
      const start = performance.now();
      const req = request(
        url,
        {
          agent,
          method: opts.method ?? 'POST',
          headers: { ...(body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }), ...opts.headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - start);
            if ((res.statusCode ?? 0) >= 300) {
              non2xx += 1;
            }
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors += 1;
        resolve();
      });
      req.end(body ?? undefined);
    });
  const begin = performance.now();
  const end = begin + seconds * 1000;
  for (let i = 0; ; i++) {
    const due = begin + (i * 1000) / rate;
    if (due >= end) {
      break;
    }
    const wait = due - performance.now();
    if (wait > 1) {
      await new Promise((r) => setTimeout(r, wait));
    }
    const p = one();
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  }
  await Promise.all(inflight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? NaN).toFixed(3));
  return { rps: Math.round(latencies.length / seconds), p50: pct(50), p90: pct(90), p99: pct(99), max: pct(100), errors, non2xx };
}

const warmup = opts.warmup ?? 2;
let figures: Figures;
if (opts.rate === undefined || opts.precise !== true) {
  await closedLoop(warmup);
  const r = await closedLoop(opts.seconds);
  figures = { rps: Math.round(r.requests.average), p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, errors: r.errors, non2xx: r.non2xx };
} else {
  await openLoop(warmup, opts.rate);
  figures = await openLoop(opts.seconds, opts.rate);
}
console.log(JSON.stringify(figures));
