import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTrustedRoot, trustExpiry } from './trust.ts';

const root = (name: string) => loadTrustedRoot(fileURLToPath(new URL(`../../../trust/${name}/trusted_root.json`, import.meta.url)));

describe('trustExpiry', () => {
  it('takes the earliest end of what is still in force: validity ends and certificate notAfter', async () => {
    const publicGood = await root('public-good');
    // The Fulcio CA in force has no validFor.end: its intermediate certificate's notAfter counts.
    // The tlogs and ctlogs in force never end, so they have no expiry; the ones that ended are history.
    expect(trustExpiry(publicGood.root, new Date('2026-11-29T00:00:00Z'))).toEqual({
      ca: new Date('2031-10-05T13:56:58Z'),
      tsa: new Date('2035-04-06T06:59:43Z'),
    });
  });

  it('counts an entry only until its validity has ended', async () => {
    const publicGood = await root('public-good');
    // In mid-2022 the first Fulcio CA and CT log were still in force, ending that year.
    expect(trustExpiry(publicGood.root, new Date('2022-06-01T00:00:00Z'))).toMatchObject({
      ca: new Date('2022-12-31T23:59:59.999Z'),
      ctlog: new Date('2022-10-31T23:59:59.999Z'),
    });
  });

  it("shows GitHub's shipped root past its current CA certificate's notAfter (a root to refresh)", async () => {
    const github = await root('github');
    const at = new Date('2026-11-29T00:00:00Z');
    const expiry = trustExpiry(github.root, at);
    expect(expiry.ca!.getTime()).toBeLessThan(at.getTime());
    expect(expiry.ca).toEqual(new Date('2026-11-13T00:00:00Z'));
  });
});
