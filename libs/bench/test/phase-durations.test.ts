import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationPhase as P } from '@ferry/proto';
import { phaseDurations } from '../src/suite';

test('phase durations run from entering a phase to entering the next; DONE has none', () => {
  const at = (ms: number) => new Date(Date.UTC(2026, 10, 30) + ms);
  const durations = phaseDurations({
    phaseTransitions: [
      { phase: P.MIGRATION_PHASE_PENDING, enteredAt: at(0) },
      { phase: P.MIGRATION_PHASE_PREFLIGHT, enteredAt: at(3) },
      { phase: P.MIGRATION_PHASE_COMPACTING, enteredAt: at(40) },
      { phase: P.MIGRATION_PHASE_PREPARING_TARGET, enteredAt: at(110) },
      { phase: P.MIGRATION_PHASE_PRECOPY, enteredAt: at(112) },
      { phase: P.MIGRATION_PHASE_STOP_AND_COPY, enteredAt: at(1500) },
      { phase: P.MIGRATION_PHASE_DONE, enteredAt: at(1570) },
    ],
  });
  assert.deepEqual(durations, { PENDING: 3, PREFLIGHT: 37, COMPACTING: 70, PREPARING_TARGET: 2, PRECOPY: 1388, STOP_AND_COPY: 70 });
});
