// Round-trips of generated messages through the protobuf binary encoding: uint64 fields as
// bigint (beyond 2^53), oneofs as $case unions (including zero values, which a oneof must keep),
// proto3 optional presence, packed repeated fields, Timestamps as Date, and the exact wire bytes
// of a small message so that the encoding is checked against the protobuf spec, not just
// against itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeMessage,
  encodeMessage,
  Fence,
  GetDomainRequest,
  LayeredParameters,
  Migration,
  MigrationEvent,
  MigrationOptions,
  MigrationOutcome,
  MigrationPhase,
  MigrationPolicy,
  PageBatchFlag,
  PageBatchHeader,
  PageEncoding,
  ChecksumAlgorithm,
  PayloadCompression,
  ReceiveStatus,
  RoundDecision,
  type MessageCodec,
} from '@ferry/proto';

const BIG = 2n ** 60n + 12345n; // well past Number.MAX_SAFE_INTEGER
const U64_MAX = 2n ** 64n - 1n;

function roundTrip<T>(codec: MessageCodec<T>, message: T): T {
  return decodeMessage(codec, encodeMessage(codec, message));
}

test('Fence encodes to the bytes the protobuf spec prescribes, uint64 max included', () => {
  const bytes = encodeMessage(Fence, { migrationId: 'm', epoch: U64_MAX });
  // field 1 (string, wire type 2): tag 0x0a, length 1, 'm'; field 2 (varint): tag 0x10, then
  // 2^64-1 as ten varint bytes.
  assert.deepEqual(
    Buffer.from(bytes).toString('hex'),
    '0a016d' + '10' + 'ff'.repeat(9) + '01',
  );
  assert.deepEqual(decodeMessage(Fence, bytes), { migrationId: 'm', epoch: U64_MAX });
  // Default values are not written at all (proto3).
  assert.equal(encodeMessage(Fence, Fence.create()).length, 0);
});

test('a Migration record keeps bigints, enums, nested records, timestamps and optional flags', () => {
  const created = new Date('2025-01-02T03:04:05.678Z');
  const migration = Migration.fromPartial({
    id: 'mig-1',
    requestId: 'req-1',
    domainName: 'kv-1',
    sourceDomid: 7,
    sourceHost: 'host-a',
    targetHost: 'host-b',
    policy: MigrationPolicy.MIGRATION_POLICY_LAYERED,
    options: {
      bandwidthBps: 1_000_000_000n,
      verify: true,
      compaction: false, // present and false: not the same as "unset"
      layered: { window: 4, threshold: 2, demoteAfter: 2 },
    },
    phase: MigrationPhase.MIGRATION_PHASE_DONE,
    outcome: MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED,
    rounds: [
      { round: 0, dirtyCount: 65536n, pagesSent: 65536n, bytes: BIG, dirtyRate: 1234.5 },
      {
        round: 1,
        final: true,
        pagesDeferred: 0n,
        decision: RoundDecision.ROUND_DECISION_STOP_AND_COPY,
        decisionReason: 'final',
        layers: { cold: 1n, warm: 2n, hot: 3n },
      },
    ],
    totals: { rounds: 2, pagesSent: BIG, bytesSent: U64_MAX, downtimeMs: 42n, memoryVerified: true },
    phaseTransitions: [{ phase: MigrationPhase.MIGRATION_PHASE_PENDING, enteredAt: created }],
    createdAt: created,
  });

  const back = roundTrip(Migration, migration);
  assert.deepEqual(back, migration);
  assert.equal(typeof back.totals?.bytesSent, 'bigint');
  assert.equal(back.totals?.bytesSent, U64_MAX);
  assert.equal(back.rounds[0]?.bytes, BIG);
  assert.equal(back.options?.compaction, false);
  assert.equal(back.createdAt?.toISOString(), '2025-01-02T03:04:05.678Z');

  // An absent optional bool stays absent (the coordinator then applies the policy default).
  const unset = roundTrip(MigrationOptions, MigrationOptions.fromPartial({ verify: true }));
  assert.equal(unset.compaction, undefined);
});

test('fromPartial accepts numbers and decimal strings for uint64 fields', () => {
  const m = Migration.fromPartial({ totals: { pagesSent: 5, bytesSent: '18446744073709551615' } });
  assert.equal(m.totals?.pagesSent, 5n);
  assert.equal(m.totals?.bytesSent, U64_MAX);
});

test('MigrationEvent oneof cases round-trip and narrow on $case', () => {
  const events: MigrationEvent[] = [
    MigrationEvent.fromPartial({
      migrationId: 'mig-1',
      sequence: 1n,
      time: new Date(0),
      event: {
        $case: 'phaseChanged',
        phaseChanged: { from: MigrationPhase.MIGRATION_PHASE_UNSPECIFIED, to: MigrationPhase.MIGRATION_PHASE_PENDING },
      },
      migration: { id: 'mig-1', phase: MigrationPhase.MIGRATION_PHASE_PENDING },
    }),
    MigrationEvent.fromPartial({
      migrationId: 'mig-1',
      sequence: 2n,
      event: {
        $case: 'roundCompleted',
        roundCompleted: { round: { round: 3, pagesSent: BIG, expectedDowntimeMs: 120n }, totals: { rounds: 4 } },
      },
    }),
    MigrationEvent.fromPartial({
      migrationId: 'mig-1',
      sequence: 3n,
      event: { $case: 'migrationCancelled', migrationCancelled: { reason: 'operator', phase: MigrationPhase.MIGRATION_PHASE_PRECOPY } },
    }),
  ];
  const decoded = events.map((e) => roundTrip(MigrationEvent, e));
  assert.deepEqual(decoded, events);

  const round = decoded[1]?.event;
  assert.ok(round && round.$case === 'roundCompleted');
  assert.equal(round.roundCompleted.round?.pagesSent, BIG);
  assert.equal(decoded[1]?.migration, undefined);
  assert.equal(decoded[2]?.event?.$case, 'migrationCancelled');
});

test('a oneof keeps a zero value (domid 0) distinct from no selection', () => {
  const byDomid = roundTrip(GetDomainRequest, { selector: { $case: 'domid', domid: 0 } });
  assert.deepEqual(byDomid.selector, { $case: 'domid', domid: 0 });
  const byName = roundTrip(GetDomainRequest, { selector: { $case: 'name', name: 'kv-1' } });
  assert.deepEqual(byName.selector, { $case: 'name', name: 'kv-1' });
  assert.equal(roundTrip(GetDomainRequest, {}).selector, undefined);
});

test('proto3 optional keeps presence: round 0 complete differs from no round complete', () => {
  const none = roundTrip(ReceiveStatus, ReceiveStatus.fromPartial({ migrationId: 'm' }));
  assert.equal(none.lastRoundComplete, undefined);
  const zero = roundTrip(ReceiveStatus, ReceiveStatus.fromPartial({ migrationId: 'm', lastRoundComplete: 0 }));
  assert.equal(zero.lastRoundComplete, 0);
});

test('PageBatchHeader carries packed uint64 pfns, per-page encodings, flags and checksum bytes', () => {
  const pfns = [0n, 1n, 1023n, 2n ** 40n];
  const header = PageBatchHeader.fromPartial({
    migrationId: 'mig-1',
    round: 2,
    sequence: 17n,
    pfnCount: pfns.length,
    flags: PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM,
    pfns,
    encodings: [PageEncoding.PAGE_ENCODING_RAW, PageEncoding.PAGE_ENCODING_ZERO, PageEncoding.PAGE_ENCODING_ABSENT, PageEncoding.PAGE_ENCODING_RAW],
    compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
    payloadLength: 2 * 4096,
    checksumAlgorithm: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
    checksum: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
  });
  const bytes = encodeMessage(PageBatchHeader, header);
  const back = decodeMessage(PageBatchHeader, bytes);
  assert.deepEqual(back, header);
  assert.ok(Buffer.isBuffer(back.checksum), 'bytes fields decode to Buffer (env=node)');
  assert.equal(back.flags & PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND, PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND);
  assert.equal(back.flags & PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE, 0);
  // 1024 pfns stay a small header: packed varints, not one tag per pfn.
  const full = PageBatchHeader.fromPartial({ pfnCount: 1024, pfns: Array.from({ length: 1024 }, (_, i) => BigInt(100_000 + i)) });
  assert.ok(encodeMessage(PageBatchHeader, full).length < 1024 * 4, 'pfns are packed');
});

test('JSON mapping uses proto names for enums and strings for uint64', () => {
  const params = LayeredParameters.fromPartial({ window: 4, threshold: 2 });
  assert.deepEqual(LayeredParameters.toJSON(params), { window: 4, threshold: 2 });
  const fence = Fence.toJSON({ migrationId: 'm', epoch: BIG }) as Record<string, unknown>;
  assert.equal(fence.epoch, BIG.toString());
  assert.deepEqual(Fence.fromJSON(fence), { migrationId: 'm', epoch: BIG });
  const options = MigrationOptions.toJSON(MigrationOptions.fromPartial({ compression: PayloadCompression.PAYLOAD_COMPRESSION_ZLIB })) as Record<string, unknown>;
  assert.equal(options.compression, 'PAYLOAD_COMPRESSION_ZLIB');
});
