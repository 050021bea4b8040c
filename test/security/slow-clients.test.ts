// Clients that send their request a byte at a time must be cut off when the request deadline
// passes (SIGNET_HTTP_HEADERS_TIMEOUT_MS for the headers, SIGNET_HTTP_REQUEST_TIMEOUT_MS for the
// whole request), whether or not they are authenticated: otherwise a few hundred of them hold
// sockets, and the HMAC source's body slots, for as long as they like.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../helpers/db.ts';
import { TEST_WEBHOOK_TOKEN } from '../helpers/signet.ts';
import { type IngestProcess, startIngestProcess } from './ingest-process.ts';

const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 3_000;
/** Node checks deadlines once a second; the rest is room for a loaded machine. */
const SLACK_MS = 4_000;
/** One byte this often: well inside the 30 s idle-socket timeout, so only a deadline can end it. */
const STEP_MS = 200;
/** How long a trickling client keeps going before the test gives up on the server. */
const GIVE_UP_MS = 25_000;
const PER_KIND = 10;

let db: TestDb;
let signet: IngestProcess;

beforeAll(async () => {
  db = await createTestDb();
  signet = await startIngestProcess(db.url, {
    SIGNET_WEBHOOK_TOKEN: TEST_WEBHOOK_TOKEN,
    SIGNET_ALLOWED_REGISTRIES: 'ghcr.io',
    SIGNET_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    SIGNET_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
  });
});

afterAll(async () => {
  await signet?.stop();
  await db?.drop();
});

interface Outcome {
  /** When the server closed the socket, from the first byte; Infinity when it never did. */
  readonly closedAfterMs: number;
  /** What the server wrote before closing. */
  readonly answer: string;
}

/** Sends `sent` at once, then `trickled` one byte every STEP_MS, until the server closes the socket. */
function trickle(port: number, sent: string, trickled: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const start = Date.now();
    let answer = '';
    let next = 0;
    let closed = false;
    const timer = setInterval(() => {
      if (next < trickled.length) {
        socket.write(trickled[next]!);
        next += 1;
      }
    }, STEP_MS);
    const giveUp = setTimeout(() => {
      socket.destroy();
      finish(Infinity);
    }, GIVE_UP_MS);
    const finish = (closedAfterMs: number) => {
      if (!closed) {
        closed = true;
        clearInterval(timer);
        clearTimeout(giveUp);
        resolve({ closedAfterMs, answer });
      }
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    // Writing after the server closed is expected: the close is what is measured.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(Date.now() - start));
    socket.write(sent);
  });
}

function head(path: string, headers: Record<string, string>): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}Content-Length: 4096\r\n\r\n`;
}

describe('slow clients', () => {
  it(`are answered 408 and cut off: headers after ${HEADERS_TIMEOUT_MS} ms, whole requests after ${REQUEST_TIMEOUT_MS} ms`, { timeout: 60_000 }, async () => {
    const signature = { 'X-Hub-Signature-256': `sha256=${randomBytes(32).toString('hex')}` };
    const body = '{'.repeat(4096);
    const kinds = {
      // The request line and headers a byte at a time.
      headers: () => trickle(signet.port, '', head('/webhooks/github', signature)),
      // An anonymous body to the HMAC source (read before it can be checked), a byte at a time.
      'unsigned body': () => trickle(signet.port, head('/webhooks/github', signature), body),
      // An authenticated sender is held to the same deadline.
      'authenticated body': () => trickle(signet.port, head('/webhooks/distribution', { Authorization: `Bearer ${TEST_WEBHOOK_TOKEN}` }), body),
    };
    const bounds = { headers: HEADERS_TIMEOUT_MS + SLACK_MS, 'unsigned body': REQUEST_TIMEOUT_MS + SLACK_MS, 'authenticated body': REQUEST_TIMEOUT_MS + SLACK_MS };
    const outcomes = await Promise.all(
      Object.entries(kinds).flatMap(([kind, run]) => Array.from({ length: PER_KIND }, async () => ({ kind: kind as keyof typeof kinds, ...(await run()) }))),
    );
    const names = Object.keys(kinds) as (keyof typeof kinds)[];
    for (const kind of names) {
      const mine = outcomes.filter((o) => o.kind === kind);
      console.log(`${kind}: closed after ${mine.map((o) => o.closedAfterMs).join(', ')} ms; first answer ${JSON.stringify(mine[0]!.answer.split('\r\n')[0])}`);
    }
    for (const kind of names) {
      const mine = outcomes.filter((o) => o.kind === kind);
      expect(mine.filter((o) => o.closedAfterMs > bounds[kind]), `${kind} sockets still open after ${bounds[kind]} ms`).toEqual([]);
      // Cut off with a 408 (or closed without a word); never anything else.
      expect(mine.filter((o) => o.answer !== '' && !o.answer.startsWith('HTTP/1.1 408 '))).toEqual([]);
    }
  });
});
