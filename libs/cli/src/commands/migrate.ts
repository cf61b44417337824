// `ferry migrate`, `ferry watch`, `ferry cancel`.

import { parseBandwidthBits } from '@ferry/runtime';
import { num, parse, UsageError } from '../args';
import { connect, COORDINATOR_FLAGS } from '../coordinator';
import { runMigrationSession } from '../migration-session';
import { describeEvent } from '../progress';
import { POLICY_NAMES } from '@ferry/bench';
import type { Command } from './command';

export const migrate: Command = {
  name: 'migrate',
  usage: 'migrate <domain> --to <host> [--policy layered] [--bandwidth 1gbit] [--verify] [--compaction|--no-compaction] [--load] [--json]',
  summary: 'live-migrate a running domain to another host',
  help: `
--policy            xen-4.17 (Xen's current loop), xen-legacy (classic Xen with to_skip), layered (default)
--bandwidth         cap on the page stream, e.g. 1gbit, 100mbit (default: unlimited)
--verify            compare a digest of every page at the paused source and the target before resume
--compaction        balloon the guest down to its used memory before round 0 (default: on for layered)
--zero-elision      send all-zero pages as 8-byte entries (default: on for layered; the Xen policies
                    send every page in full, as Xen's stream does); --no-zero-elision turns it off
--downtime-target   layered: stop-and-copy once what remains fits this many ms
--window/--threshold/--demote-after   layered classifier parameters
--load              drive the guest's kv service during the migration and report what the client saw
--json              print one JSON object at the end (outcome, rounds, pages, bytes, times, app)
Exit status: 0 when the migration succeeded, 1 otherwise.`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      ...COORDINATOR_FLAGS,
      to: { type: 'string' },
      from: { type: 'string' },
      policy: { type: 'string' },
      bandwidth: { type: 'string' },
      verify: { type: 'boolean' },
      compaction: { type: 'boolean' },
      'no-compaction': { type: 'boolean' },
      'zero-elision': { type: 'boolean' },
      'no-zero-elision': { type: 'boolean' },
      'downtime-target': { type: 'string' },
      window: { type: 'string' },
      threshold: { type: 'string' },
      'demote-after': { type: 'string' },
      'max-rounds': { type: 'string' },
      load: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    const domain = positionals[0];
    if (!domain || positionals.length > 1) throw new UsageError('name exactly one domain');
    if (!values.to) throw new UsageError('--to <host> is required');
    const policy = values.policy ?? 'layered';
    if (!(POLICY_NAMES as string[]).includes(policy)) throw new UsageError(`unknown policy "${policy}" (${POLICY_NAMES.join(', ')})`);
    if (values.compaction && values['no-compaction']) throw new UsageError('--compaction and --no-compaction contradict each other');
    const compaction = values.compaction ? true : values['no-compaction'] ? false : undefined;
    if (values['zero-elision'] && values['no-zero-elision']) throw new UsageError('--zero-elision and --no-zero-elision contradict each other');
    const zeroPageElision = values['zero-elision'] ? true : values['no-zero-elision'] ? false : undefined;
    const layered =
      values.window || values.threshold || values['demote-after']
        ? { window: num(values.window, 'window', 4), threshold: num(values.threshold, 'threshold', 3), demoteAfter: num(values['demote-after'], 'demote-after', 1) }
        : undefined;
    const ferry = connect(values);
    const tty = process.stdout.isTTY && !values.json;
    try {
      const result = await runMigrationSession(
        ferry,
        {
          domainName: domain,
          targetHost: values.to,
          ...(values.from ? { sourceHost: values.from } : {}),
          policy: policy as 'xen-4.17' | 'xen-legacy' | 'layered',
          options: {
            bandwidthBps: parseBandwidthBits(values.bandwidth ?? '0'),
            verify: values.verify ?? false,
            ...(compaction !== undefined ? { compaction } : {}),
            ...(zeroPageElision !== undefined ? { zeroPageElision } : {}),
            downtimeTargetMs: num(values['downtime-target'], 'downtime-target', 0),
            maxRounds: num(values['max-rounds'], 'max-rounds', 0),
            ...(layered ? { layered } : {}),
          },
        },
        {
          load: values.load ?? false,
          onEvent: (e) => {
            if (values.json) return;
            const line = describeEvent(e);
            if (line) console.log(tty ? `  ${line}` : line);
          },
        },
      );
      if (values.json) {
        console.log(JSON.stringify({ ...result.summary, ...(result.app ? { app: result.app } : {}), ...(result.failure ? { failure: result.failure } : {}) }));
      } else {
        printSummary(result);
      }
      return result.summary.outcome === 'succeeded' ? 0 : 1;
    } finally {
      ferry.close();
    }
  },
};

export function printSummary(result: Awaited<ReturnType<typeof runMigrationSession>>): void {
  const s = result.summary;
  const mib = (b: number) => (b / 1048576).toFixed(1);
  console.log(`\n${s.domain}: ${s.source} → ${s.target} with ${s.policy}: ${s.outcome.toUpperCase()}${result.failure ? ` (${result.failure.phase}: ${result.failure.reason})` : ''}`);
  console.log(`  rounds            ${s.rounds}`);
  console.log(`  pages sent        ${s.pages_sent} (${s.zero_pages} zero pages, ${s.deferred_pages} held for stop-and-copy)`);
  console.log(`  data sent         ${mib(s.bytes_sent)} MiB`);
  console.log(`  balloon released  ${s.balloon_released_pages} pages (${mib(s.balloon_released_pages * 4096)} MiB never sent)`);
  console.log(`  total time        ${s.total_ms} ms`);
  const b = s.downtime_breakdown_ms;
  console.log(`  downtime          ${s.downtime_ms} ms${b ? ` (suspend ${b.suspend}, final round ${b.final_round}${b.verify ? `, verify ${b.verify}` : ''}, commit ${b.commit}, resume ${b.resume})` : ''}`);
  console.log(`  memory verified   ${s.memory_verified ? 'yes' : 'no'}`);
  if (result.app) {
    const a = result.app;
    console.log(`  client            ${a.requests} requests, ${a.errors} errors, longest gap ${a.max_gap_ms} ms, ${a.lost_writes} lost writes of ${a.acked_writes} acknowledged`);
  }
  if (s.trace_id) console.log(`  trace             ${s.trace_id}`);
  console.log(`  migration id      ${s.id}`);
}

export const watch: Command = {
  name: 'watch',
  usage: 'watch <migration-id> [--json]',
  summary: 'follow a migration\'s events (from the beginning) until it ends',
  async run(argv) {
    const { values, positionals } = parse(argv, { ...COORDINATOR_FLAGS, json: { type: 'boolean' } });
    const id = positionals[0];
    if (!id) throw new UsageError('name a migration id');
    const ferry = connect(values);
    try {
      for await (const e of ferry.watch(id)) {
        if (values.json) {
          const { migration: _omit, ...rest } = e;
          console.log(JSON.stringify(rest, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
        } else {
          const line = describeEvent(e);
          if (line) console.log(`#${Number(e.sequence)} ${line}`);
        }
      }
      return 0;
    } finally {
      ferry.close();
    }
  },
};

export const cancel: Command = {
  name: 'cancel',
  usage: 'cancel <migration-id> [--reason TEXT]',
  summary: 'cancel a migration: before the commit point it rolls back and the guest stays on its source',
  async run(argv) {
    const { values, positionals } = parse(argv, { ...COORDINATOR_FLAGS, reason: { type: 'string' } });
    const id = positionals[0];
    if (!id) throw new UsageError('name a migration id');
    const ferry = connect(values);
    try {
      await ferry.cancelMigration(id, values.reason ?? 'cancelled from the ferry CLI');
      console.log(`cancel requested for ${id} (ferry watch ${id} follows it)`);
      return 0;
    } finally {
      ferry.close();
    }
  },
};
