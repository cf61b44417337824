// A strict reader of the Prometheus text format (0.0.4) for tests: it throws on anything a
// Prometheus server would reject or that breaks the format's rules (a sample before its TYPE, a
// malformed label, a duplicate series, histogram buckets that are not cumulative), and answers
// sample values by name and labels.

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: ParsedSample[];
}

export interface Exposition {
  families: Map<string, ParsedFamily>;
  /** The value of the one sample with this name and (exactly) these labels; undefined if none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of that name. */
  samples(name: string): ParsedSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value "${text}" in: ${line}`);
  return Number(text);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at "${text.slice(i)}" in: ${line}`);
    i += m[0].length;
    let value = '';
    for (;;) {
      if (i >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const c = text[i++];
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i++];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`bad escape \\${e} in: ${line}`);
      } else value += c;
    }
    if (m[1] in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]] = value;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`expected "," after a label in: ${line}`);
  }
  return labels;
}

/** The family a sample belongs to (histograms own name_bucket, name_sum, name_count). */
function familyOf(families: Map<string, ParsedFamily>, sample: string): ParsedFamily | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  const m = /^(.*)_(bucket|sum|count)$/.exec(sample);
  const f = m ? families.get(m[1]) : undefined;
  return f && (f.type === 'histogram' || f.type === 'summary') ? f : undefined;
}

function checkHistogram(f: ParsedFamily): void {
  const groups = new Map<string, ParsedSample[]>();
  for (const s of f.samples.filter((x) => x.name === `${f.name}_bucket`)) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const [key, buckets] of groups) {
    let previous = -Infinity;
    for (const b of buckets) {
      if (b.value < previous) throw new Error(`${f.name}${key}: buckets are not cumulative`);
      previous = b.value;
    }
    const inf = buckets.find((b) => b.labels.le === '+Inf');
    const count = f.samples.find((s) => s.name === `${f.name}_count` && JSON.stringify(s.labels) === key);
    if (!inf || !count || inf.value !== count.value) throw new Error(`${f.name}${key}: the +Inf bucket must equal _count`);
  }
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, ParsedFamily>();
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME}) ?(.*)$`).exec(line);
      if (!m) continue; // a plain comment
      const f = families.get(m[2]) ?? { name: m[2], type: 'untyped', help: '', samples: [] };
      if (m[1] === 'TYPE') {
        if (!TYPES.has(m[3])) throw new Error(`unknown type in: ${line}`);
        if (f.samples.length > 0) throw new Error(`TYPE after samples in: ${line}`);
        f.type = m[3];
      } else {
        f.help = m[3].replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      families.set(m[2], f);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const sample = { name: m[1], labels: m[2] ? parseLabels(m[2], line) : {}, value: parseValue(m[3], line) };
    const f = familyOf(families, sample.name);
    if (!f) throw new Error(`sample before its family's TYPE: ${line}`);
    const key = `${sample.name}${JSON.stringify(sample.labels)}`;
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`);
    seen.add(key);
    f.samples.push(sample);
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  const all = () => [...families.values()].flatMap((f) => f.samples);
  return {
    families,
    samples: (name) => all().filter((s) => s.name === name),
    value(name, labels = {}) {
      const want = JSON.stringify(Object.entries(labels).sort());
      return all().find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
    },
  };
}
