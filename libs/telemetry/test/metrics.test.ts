// The Prometheus registry and text format: what a scrape returns, byte for byte where the format
// is strict (escaping, histogram buckets, special values), and the HTTP endpoint serving it.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { MetricsRegistry, TEXT_FORMAT_CONTENT_TYPE, parseListenAddress, serveMetrics, type MetricsServer } from '../src';
import { parseExposition } from './support/exposition-parser';

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics registry', () => {
  test('counters, gauges and label escaping render in the text format', () => {
    const r = new MetricsRegistry();
    const c = r.counter({ name: 'ferry_things_total', help: 'Things.\nSecond line with a \\ backslash.', labelNames: ['kind'] });
    const g = r.gauge({ name: 'ferry_level', help: 'A level.' });
    c.inc(2, { kind: 'a "quoted"\nvalue\\' });
    c.inc(1, { kind: 'a "quoted"\nvalue\\' });
    g.set(-1.5);
    assert.equal(
      r.render(),
      [
        '# HELP ferry_things_total Things.\\nSecond line with a \\\\ backslash.',
        '# TYPE ferry_things_total counter',
        'ferry_things_total{kind="a \\"quoted\\"\\nvalue\\\\"} 3',
        '# HELP ferry_level A level.',
        '# TYPE ferry_level gauge',
        'ferry_level -1.5',
        '',
      ].join('\n'),
    );
  });

  test('special values, removal of a series, and a counter only going up', () => {
    const r = new MetricsRegistry();
    const g = r.gauge({ name: 'g', help: 'g', labelNames: ['x'] });
    g.set(Infinity, { x: 'inf' });
    g.set(-Infinity, { x: 'minus' });
    g.set(NaN, { x: 'nan' });
    g.set(1, { x: 'gone' });
    g.remove({ x: 'gone' });
    const lines = r.render().trim().split('\n').slice(2);
    assert.deepEqual(lines, ['g{x="inf"} +Inf', 'g{x="minus"} -Inf', 'g{x="nan"} NaN']);
    const c = r.counter({ name: 'c_total', help: 'c' });
    assert.throws(() => c.inc(-1), /only goes up/);
  });

  test('a histogram has cumulative buckets, +Inf, _sum and _count', () => {
    const r = new MetricsRegistry();
    const h = r.histogram({ name: 'd_seconds', help: 'd', labelNames: ['policy'], buckets: [0.1, 1] });
    for (const v of [0.05, 0.5, 0.5, 3]) h.observe(v, { policy: 'layered' });
    assert.deepEqual(r.render().trim().split('\n').slice(2), [
      'd_seconds_bucket{policy="layered",le="0.1"} 1',
      'd_seconds_bucket{policy="layered",le="1"} 3',
      'd_seconds_bucket{policy="layered",le="+Inf"} 4',
      'd_seconds_sum{policy="layered"} 4.05',
      'd_seconds_count{policy="layered"} 4',
    ]);
    assert.throws(() => r.histogram({ name: 'bad', help: 'b', buckets: [1, 1] }), /increasing/);
  });

  test('observed metrics are read at scrape time', () => {
    const r = new MetricsRegistry();
    const totals = { pages: 1 };
    r.observed({ name: 'pages_total', help: 'p', type: 'counter', collect: () => totals.pages });
    r.observed({ name: 'by_phase', help: 'p', type: 'gauge', labelNames: ['phase'], collect: () => [{ labels: { phase: 'precopy' }, value: 2 }] });
    totals.pages = 7;
    const parsed = parseExposition(r.render());
    assert.equal(parsed.value('pages_total'), 7);
    assert.equal(parsed.value('by_phase', { phase: 'precopy' }), 2);
  });

  test('names and labels are checked', () => {
    const r = new MetricsRegistry();
    assert.throws(() => r.counter({ name: '1bad', help: 'x' }), /invalid metric name/);
    assert.throws(() => r.counter({ name: 'ok_total', help: 'x', labelNames: ['__reserved'] }), /invalid label name/);
    const c = r.counter({ name: 'ok_total', help: 'x', labelNames: ['a'] });
    assert.throws(() => c.inc(1, { b: 'x' }), /takes labels \{a\}/);
    assert.throws(() => c.inc(1), /takes labels \{a\}/);
    assert.throws(() => r.gauge({ name: 'ok_total', help: 'again' }), /registered already/);
  });
});

describe('metrics endpoint', () => {
  let server: MetricsServer | undefined;
  after(async () => {
    await server?.close();
  });

  test('GET /metrics answers the exposition; other paths 404, other methods 405', async () => {
    const r = new MetricsRegistry();
    r.counter({ name: 'ferry_scrapes_total', help: 'x' }).inc(5);
    server = await serveMetrics(r, '127.0.0.1:0');
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    const ok = await get(`http://${server.address}/metrics`);
    assert.equal(ok.status, 200);
    assert.equal(ok.type, TEXT_FORMAT_CONTENT_TYPE);
    assert.equal(parseExposition(ok.body).value('ferry_scrapes_total'), 5);
    assert.equal((await get(`http://${server.address}/metrics`, 'HEAD')).body, '');
    assert.equal((await get(`http://${server.address}/`)).status, 404);
    assert.equal((await get(`http://${server.address}/metrics`, 'POST')).status, 405);
  });

  test('listen addresses', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0 });
    assert.throws(() => parseListenAddress('9464'), /not a listen address/);
    assert.throws(() => parseListenAddress('host:99999'), /not a listen address/);
  });
});
