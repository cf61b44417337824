// A small metrics registry with Prometheus semantics: counters (only go up), gauges (any value,
// series can be removed), histograms (cumulative buckets, sum, count), and observed metrics whose
// values are read when scraped (from state the process keeps anyway). Each metric declares its
// label names; every update names exactly those labels.

import { isValidLabelName, isValidMetricName, renderTextFormat, type Labels, type MetricFamily, type MetricType, type Sample } from './text-format';

export interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, increasing; +Inf is added. */
  buckets: readonly number[];
}

export interface ObservedValue {
  labels?: Labels;
  value: number;
}

export interface ObservedOptions extends MetricOptions {
  type: 'counter' | 'gauge';
  /** Called on every scrape. */
  collect: () => number | readonly ObservedValue[];
}

/** The label set of a series as a map key (label order fixed by the metric's declaration). */
function seriesKey(labelNames: readonly string[], labels: Labels): string {
  return labelNames.map((n) => labels[n]).join('\u0000');
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];

  constructor(
    opts: MetricOptions,
    readonly type: MetricType,
  ) {
    if (!isValidMetricName(opts.name)) throw new RangeError(`invalid metric name "${opts.name}"`);
    for (const l of opts.labelNames ?? []) if (!isValidLabelName(l)) throw new RangeError(`invalid label name "${l}" of ${opts.name}`);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
  }

  /** The labels in declaration order; throws on a missing or unknown label (a programming error). */
  protected checked(labels: Labels = {}): Labels {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || this.labelNames.some((n) => typeof labels[n] !== 'string')) {
      throw new RangeError(`${this.name} takes labels {${this.labelNames.join(', ')}}, got {${given.join(', ')}}`);
    }
    const out: Record<string, string> = {};
    for (const n of this.labelNames) out[n] = labels[n];
    return out;
  }

  abstract samples(): Sample[];
}

class ValueMetric extends Metric {
  protected readonly series = new Map<string, { labels: Labels; value: number }>();

  protected update(labels: Labels | undefined, f: (v: number) => number): void {
    const l = this.checked(labels);
    const key = seriesKey(this.labelNames, l);
    const s = this.series.get(key);
    if (s) s.value = f(s.value);
    else this.series.set(key, { labels: l, value: f(0) });
  }

  samples(): Sample[] {
    return [...this.series.values()].map((s) => ({ name: this.name, labels: s.labels, value: s.value }));
  }
}

export class Counter extends ValueMetric {
  constructor(opts: MetricOptions) {
    super(opts, 'counter');
  }

  inc(by = 1, labels?: Labels): void {
    if (!(by >= 0)) throw new RangeError(`${this.name}: a counter only goes up (got ${by})`);
    this.update(labels, (v) => v + by);
  }

  /** Makes the series exist (at 0) so that it is scraped before its first increment. */
  touch(labels?: Labels): void {
    this.update(labels, (v) => v);
  }
}

export class Gauge extends ValueMetric {
  constructor(opts: MetricOptions) {
    super(opts, 'gauge');
  }

  set(value: number, labels?: Labels): void {
    this.update(labels, () => value);
  }

  inc(by = 1, labels?: Labels): void {
    this.update(labels, (v) => v + by);
  }

  dec(by = 1, labels?: Labels): void {
    this.update(labels, (v) => v - by);
  }

  /** Drops one series (e.g. a migration that is forgotten). */
  remove(labels?: Labels): void {
    this.series.delete(seriesKey(this.labelNames, this.checked(labels)));
  }
}

export class Histogram extends Metric {
  private readonly bounds: number[];
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(opts: HistogramOptions) {
    super(opts, 'histogram');
    if (opts.labelNames?.includes('le')) throw new RangeError(`${opts.name}: "le" is the bucket label of a histogram`);
    const b = [...opts.buckets];
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]))) {
      throw new RangeError(`${opts.name}: buckets must be finite and increasing`);
    }
    this.bounds = b;
  }

  observe(value: number, labels?: Labels): void {
    const l = this.checked(labels);
    const key = seriesKey(this.labelNames, l);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: l, counts: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    for (const s of this.series.values()) {
      // The stored counts are already cumulative: an observation counts in every bucket it fits.
      this.bounds.forEach((le, i) => out.push({ name: `${this.name}_bucket`, labels: { ...s.labels, le: String(le) }, value: s.counts[i] }));
      out.push({ name: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      out.push({ name: `${this.name}_sum`, labels: s.labels, value: s.sum });
      out.push({ name: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return out;
  }
}

class ObservedMetric extends Metric {
  constructor(private readonly opts: ObservedOptions) {
    super(opts, opts.type);
  }

  samples(): Sample[] {
    const v = this.opts.collect();
    const values = typeof v === 'number' ? [{ value: v }] : v;
    return values.map((o) => ({ name: this.name, labels: this.checked(o.labels), value: o.value }));
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(opts: MetricOptions): Counter {
    return this.add(new Counter(opts));
  }

  gauge(opts: MetricOptions): Gauge {
    return this.add(new Gauge(opts));
  }

  histogram(opts: HistogramOptions): Histogram {
    return this.add(new Histogram(opts));
  }

  /** A counter or gauge whose values `collect` reads at scrape time. */
  observed(opts: ObservedOptions): void {
    this.add(new ObservedMetric(opts));
  }

  /** Every metric, in registration order. */
  collect(): MetricFamily[] {
    return [...this.metrics.values()].map((m) => ({ name: m.name, help: m.help, type: m.type, samples: m.samples() }));
  }

  /** The Prometheus text exposition of every metric. */
  render(): string {
    return renderTextFormat(this.collect());
  }

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new RangeError(`metric ${m.name} is registered already`);
    this.metrics.set(m.name, m);
    return m;
  }
}
