import { Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createLogger, logDestination } from './logger.ts';

describe('createLogger', () => {
  it('redacts authorization headers, passwords and tokens wherever they are logged', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    // The production logger, written to a buffer instead of stdout.
    const real = createLogger({ logLevel: 'info' }, {}, sink);
    real.info({ req: { headers: { authorization: 'Bearer s3cret-webhook-token' } } }, 'request');
    real.info({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }, 'headers');
    real.info({ credentials: { username: 'alice', password: 'hunter2' } }, 'creds');
    real.info({ response: { token: 'registry-bearer-token' } }, 'token');
    real.info({ authorization: 'Bearer top-level' }, 'top');
    const out = lines.join('');
    for (const secret of ['s3cret-webhook-token', 'dXNlcjpwYXNz', 'hunter2', 'registry-bearer-token', 'top-level']) {
      expect(out).not.toContain(secret);
    }
    expect(out.match(/\[redacted\]/g)).toHaveLength(5);
    expect(out).toContain('alice');
  });
});

describe('logDestination', () => {
  it('is NDJSON (the default, stdout) when not on a terminal', () => {
    expect(logDestination(new Writable())).toBeUndefined();
  });

  it('is pino-pretty on a terminal: one readable line per entry, secrets still redacted', () => {
    let out = '';
    const terminal = Object.assign(
      new Writable({
        write(chunk: Buffer, _enc, done) {
          out += chunk.toString();
          done();
        },
      }),
      { isTTY: true },
    );
    const log = createLogger({ logLevel: 'info' }, { role: 'api' }, logDestination(terminal));
    log.warn({ dependency: 'redis', address: '127.0.0.1:6379', headers: { authorization: 'Bearer s3cret' } }, 'redis at 127.0.0.1:6379 is unreachable');
    const plain = stripVTControlCharacters(out);
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: redis at 127\.0\.0\.1:6379 is unreachable\n/);
    expect(plain).toContain('role: "api"');
    expect(plain).not.toContain('s3cret');
    expect(plain).not.toMatch(/^\{/);
  });
});
