// The Prometheus naming conventions (prometheus.io/docs/practices/naming, and what
// `promtool check metrics` lints), checked over a text exposition: every family has HELP and TYPE,
// snake_case names, counters and only counters end in `_total`, base units (seconds, bytes) and no
// abbreviated ones, `_info` series are gauges, Signet's own series carry `signet_` and nothing else
// beyond Node's stock process metrics (held to HELP and TYPE only: prom-client names them, and
// dashboards expect those names), and no label that could take a value per image or person.

const FOREIGN_PREFIXES = ['process_', 'nodejs_'];
/** Labels whose values grow with the ledger or the users: never on a series. */
const UNBOUNDED_LABELS = new Set(['image', 'digest', 'ref', 'reference', 'identity', 'subject', 'email', 'user', 'uid', 'namespace_name', 'repository', 'tag']);
const ABBREVIATED_UNITS = /_(ms|msec|millis|milliseconds|us|microseconds|ns|sec|secs|minutes|hours?|days?|kb|mb|gb|kilobytes|megabytes|percent|pct)(_|$)/;

interface Family {
  type?: string;
  help?: string;
  labels: Set<string>;
}

/** Each family of an exposition with its TYPE, HELP and label names. */
export function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  const family = (name: string) => out.get(name) ?? out.set(name, { labels: new Set() }).get(name)!;
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta !== null) {
      family(meta[2]!)[meta[1] === 'HELP' ? 'help' : 'type'] = meta[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? /.exec(line);
    if (sample === null) {
      continue;
    }
    const base = [...out.keys()].find((n) => sample[1] === n || (/_(bucket|count|sum)$/.test(sample[1]!) && sample[1]!.replace(/_(bucket|count|sum)$/, '') === n)) ?? sample[1]!;
    for (const pair of (sample[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) {
      family(base).labels.add(pair[1]!);
    }
  }
  return out;
}

/** What breaks the conventions, one line per problem; empty when all is well. */
export function namingProblems(text: string): string[] {
  const problems: string[] = [];
  for (const [name, f] of families(text)) {
    const say = (what: string) => problems.push(`${name}: ${what}`);
    if (f.help === undefined || f.help.trim() === '') {say('no HELP');}
    if (f.type === undefined) {say('no TYPE');}
    if (FOREIGN_PREFIXES.some((p) => name.startsWith(p))) {
      continue; // prom-client's stock Node metrics, named as every Node dashboard expects (a few predate the conventions)
    }
    if (!/^[a-z_:][a-z0-9_:]*$/.test(name)) {say('not snake_case');}
    if (f.type === 'counter' && !name.endsWith('_total')) {say('a counter must end in _total');}
    if (f.type !== 'counter' && name.endsWith('_total')) {say(`a ${f.type ?? 'series'} must not end in _total`);}
    if (name.endsWith('_info') && f.type !== 'gauge') {say('an _info series must be a gauge');}
    if (ABBREVIATED_UNITS.test(name)) {say('use base units spelt out (_seconds, _bytes)');}
    if (!name.startsWith('signet_') && !FOREIGN_PREFIXES.some((p) => name.startsWith(p))) {say('not signet_ and not a stock process/nodejs metric');}
    if (FOREIGN_PREFIXES.some((p) => name.startsWith(`signet_${p}`))) {say("Node's default metrics keep their stock names");}
    for (const label of f.labels) {
      if (label !== 'le' && label !== 'quantile' && UNBOUNDED_LABELS.has(label)) {say(`label "${label}" has unbounded values`);}
    }
  }
  return problems;
}
