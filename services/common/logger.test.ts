import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';

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
