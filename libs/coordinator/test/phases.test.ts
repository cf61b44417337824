import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationOutcome as O, MigrationPhase as P } from '@ferry/proto';
import { allowedOutcomes, assertTransition, canTransition, cancelEffect, IllegalTransition, isBeforeCommit, isPastCommit, recoveryPlan } from '../src';

function walk(path: P[]): void {
  for (let i = 1; i < path.length; i++) assertTransition(path[i - 1], path[i]);
}

test('the usual paths are transitions of the machine', () => {
  const forward = [P.MIGRATION_PHASE_COMMITTED, P.MIGRATION_PHASE_RESUMING_TARGET, P.MIGRATION_PHASE_CLEANING_UP, P.MIGRATION_PHASE_DONE];
  // Everything: compaction and verify.
  walk([
    P.MIGRATION_PHASE_UNSPECIFIED,
    P.MIGRATION_PHASE_PENDING,
    P.MIGRATION_PHASE_PREFLIGHT,
    P.MIGRATION_PHASE_COMPACTING,
    P.MIGRATION_PHASE_PREPARING_TARGET,
    P.MIGRATION_PHASE_PRECOPY,
    P.MIGRATION_PHASE_STOP_AND_COPY,
    P.MIGRATION_PHASE_VERIFYING,
    ...forward,
  ]);
  // Neither (the Xen baselines' default).
  walk([P.MIGRATION_PHASE_PREFLIGHT, P.MIGRATION_PHASE_PREPARING_TARGET, P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_STOP_AND_COPY, ...forward]);
});

test('before the commit point every phase can roll back; from it on nothing can', () => {
  const before = [P.MIGRATION_PHASE_PREFLIGHT, P.MIGRATION_PHASE_COMPACTING, P.MIGRATION_PHASE_PREPARING_TARGET, P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_STOP_AND_COPY, P.MIGRATION_PHASE_VERIFYING];
  for (const p of before) {
    assert.ok(isBeforeCommit(p));
    assert.ok(canTransition(p, P.MIGRATION_PHASE_ROLLING_BACK), `${P[p]} -> ROLLING_BACK`);
    assert.equal(canTransition(p, P.MIGRATION_PHASE_RESUMING_TARGET), false, 'the target never runs before the commit point');
  }
  for (const p of [P.MIGRATION_PHASE_COMMITTED, P.MIGRATION_PHASE_RESUMING_TARGET, P.MIGRATION_PHASE_CLEANING_UP]) {
    assert.ok(isPastCommit(p));
    assert.equal(isBeforeCommit(p), false);
    assert.equal(canTransition(p, P.MIGRATION_PHASE_ROLLING_BACK), false, `${P[p]} never rolls back`);
  }
  assert.equal(canTransition(P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_COMMITTED), false, 'no commit without stop-and-copy');
  assert.equal(canTransition(P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_DONE), false, 'no end without rolling back');
  assert.throws(() => assertTransition(P.MIGRATION_PHASE_DONE, P.MIGRATION_PHASE_PRECOPY), IllegalTransition);
  for (const to of Object.values(P).filter((v): v is P => typeof v === 'number')) {
    assert.equal(canTransition(P.MIGRATION_PHASE_DONE, to), false, 'DONE is final');
  }
});

test('outcomes fit the path that ends the migration', () => {
  assert.deepEqual(allowedOutcomes(P.MIGRATION_PHASE_CLEANING_UP), [O.MIGRATION_OUTCOME_SUCCEEDED]);
  assert.ok(allowedOutcomes(P.MIGRATION_PHASE_ROLLING_BACK).includes(O.MIGRATION_OUTCOME_CANCELLED));
  assert.ok(allowedOutcomes(P.MIGRATION_PHASE_ROLLING_BACK).includes(O.MIGRATION_OUTCOME_ROLLED_BACK));
  assert.equal(allowedOutcomes(P.MIGRATION_PHASE_ROLLING_BACK).includes(O.MIGRATION_OUTCOME_SUCCEEDED), false);
  assert.deepEqual(allowedOutcomes(P.MIGRATION_PHASE_PREFLIGHT), [O.MIGRATION_OUTCOME_FAILED, O.MIGRATION_OUTCOME_CANCELLED]);
  assert.deepEqual(allowedOutcomes(P.MIGRATION_PHASE_RESUMING_TARGET), [O.MIGRATION_OUTCOME_FAILED]);
  assert.deepEqual(allowedOutcomes(P.MIGRATION_PHASE_PRECOPY), []);
});

test('a cancel is accepted before the commit point only', () => {
  const none = O.MIGRATION_OUTCOME_UNSPECIFIED;
  assert.equal(cancelEffect(P.MIGRATION_PHASE_PENDING, none, false), 'accept');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_PRECOPY, none, false), 'accept');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_STOP_AND_COPY, none, false), 'accept');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_VERIFYING, none, false), 'accept');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_PRECOPY, none, true), 'already');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_COMMITTED, none, false), 'refuse-committed');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_CLEANING_UP, none, true), 'refuse-committed');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_ROLLING_BACK, none, false), 'refuse-rolling-back');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_ROLLING_BACK, none, true), 'already');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_DONE, O.MIGRATION_OUTCOME_CANCELLED, true), 'already');
  assert.equal(cancelEffect(P.MIGRATION_PHASE_DONE, O.MIGRATION_OUTCOME_SUCCEEDED, false), 'refuse-ended');
});

test('a coordinator taking over rolls back before the commit point and forward after it', () => {
  assert.equal(recoveryPlan(P.MIGRATION_PHASE_PENDING), 'admit');
  for (const p of [P.MIGRATION_PHASE_PREFLIGHT, P.MIGRATION_PHASE_COMPACTING, P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_STOP_AND_COPY, P.MIGRATION_PHASE_VERIFYING, P.MIGRATION_PHASE_ROLLING_BACK]) {
    assert.equal(recoveryPlan(p), 'roll-back', P[p]);
  }
  for (const p of [P.MIGRATION_PHASE_COMMITTED, P.MIGRATION_PHASE_RESUMING_TARGET, P.MIGRATION_PHASE_CLEANING_UP]) {
    assert.equal(recoveryPlan(p), 'roll-forward', P[p]);
  }
  assert.equal(recoveryPlan(P.MIGRATION_PHASE_DONE), 'none');
});
