// The naming check itself (test/integration/metrics.test.ts runs it over a live /metrics): each
// rule catches what it is for.
import { describe, expect, it } from 'vitest';
import { namingProblems } from './helpers/prometheus-naming.ts';

const family = (name: string, type: string, sample = `${name} 1`, help = 'Something.') => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${sample}\n`;

describe('namingProblems', () => {
  it('passes a conventional exposition', () => {
    const text = [
      family('signet_jobs_total', 'counter', 'signet_jobs_total{result="ok"} 3'),
      family('signet_job_duration_seconds', 'histogram', 'signet_job_duration_seconds_bucket{le="1"} 1\nsignet_job_duration_seconds_sum 0.5\nsignet_job_duration_seconds_count 1'),
      family('signet_build_info', 'gauge', 'signet_build_info{version="0.1.0"} 1'),
      family('process_cpu_seconds_total', 'counter'),
    ].join('');
    expect(namingProblems(text)).toEqual([]);
  });

  it.each([
    [family('signet_lookups', 'counter'), 'a counter must end in _total'],
    [family('signet_entries_total', 'gauge'), 'must not end in _total'],
    [family('signet_latency_ms', 'histogram', 'signet_latency_ms_count 1'), 'base units'],
    [family('signet_build_info', 'counter'), 'an _info series must be a gauge'],
    [family('signet_process_resident_memory_bytes', 'gauge'), 'stock names'],
    [family('lookups_total', 'counter'), 'not signet_'],
    [family('signet_decisions_total', 'counter', 'signet_decisions_total{image="a/b:c"} 1'), 'unbounded'],
    ['# TYPE signet_x_total counter\nsignet_x_total 1\n', 'no HELP'],
    [family('signet_camelCase_total', 'counter'), 'snake_case'],
  ])('flags %#: %s', (text, problem) => {
    expect(namingProblems(text).join('\n')).toContain(problem);
  });
});
