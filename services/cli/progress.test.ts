import { describe, expect, it } from 'vitest';
import { createProgressLine, createProgressReporter } from './progress.ts';

const at = (checked: number, tags = 250) => ({ repositories: 1, tags, checked, queued: checked, repository: 'team/app' });

describe('createProgressReporter', () => {
  it('writes nothing when not on a terminal', () => {
    const lines: string[] = [];
    const r = createProgressReporter({ write: (s: string) => lines.push(s) }, () => 0);
    for (let i = 1; i <= 250; i++) {
      r.update(at(i));
    }
    r.done();
    expect(lines).toEqual([]);
  });

  it('redraws one line in place on a terminal, throttled, and ends it', () => {
    let t = 0;
    const out: string[] = [];
    const r = createProgressReporter({ isTTY: true, columns: 200, write: (s: string) => out.push(s) }, () => t);
    r.update(at(10));
    r.update(at(20)); // within 100 ms: skipped
    t = 500;
    r.update(at(250));
    r.done();
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/^\r\[#-{23}\] 1 repositories, 10\/250 tags checked/);
    expect(out[1]).toMatch(/^\r\[#{24}\] .*250\/250/);
    expect(out[2]).toBe('\n');
  });
});

describe('createProgressLine', () => {
  it('draws no bar when the total is unknown, and nothing to end when nothing was drawn', () => {
    const out: string[] = [];
    const line = createProgressLine({ isTTY: true, columns: 80, write: (s: string) => out.push(s) }, () => 0);
    line.update('12 checked, 1 changed', 12, null);
    line.done();
    line.done();
    expect(out).toEqual(['\r12 checked, 1 changed\x1b[K', '\n']);
  });
});
