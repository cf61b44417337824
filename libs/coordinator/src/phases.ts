// The rules of the phase machine (DESIGN.md "A migration, phase by phase"), as pure functions:
// which transitions exist, where the commit point lies, which outcomes each path may end with,
// and what a coordinator that takes a migration over must do with it. The coordinator checks
// every write of a phase against these rules.

import { MigrationOutcome, MigrationPhase } from '@ferry/proto';

const P = MigrationPhase;
const O = MigrationOutcome;

/** Every phase a phase may move to. */
const NEXT: Readonly<Record<MigrationPhase, readonly MigrationPhase[]>> = {
  [P.MIGRATION_PHASE_UNSPECIFIED]: [P.MIGRATION_PHASE_PENDING],
  // DONE straight from PENDING: cancelled while queued for admission.
  [P.MIGRATION_PHASE_PENDING]: [P.MIGRATION_PHASE_PREFLIGHT, P.MIGRATION_PHASE_DONE],
  // DONE straight from PREFLIGHT: rejected or cancelled before anything was touched.
  [P.MIGRATION_PHASE_PREFLIGHT]: [
    P.MIGRATION_PHASE_COMPACTING,
    P.MIGRATION_PHASE_PREPARING_TARGET,
    P.MIGRATION_PHASE_ROLLING_BACK,
    P.MIGRATION_PHASE_DONE,
  ],
  [P.MIGRATION_PHASE_COMPACTING]: [P.MIGRATION_PHASE_PREPARING_TARGET, P.MIGRATION_PHASE_ROLLING_BACK],
  [P.MIGRATION_PHASE_PREPARING_TARGET]: [P.MIGRATION_PHASE_PRECOPY, P.MIGRATION_PHASE_ROLLING_BACK],
  [P.MIGRATION_PHASE_PRECOPY]: [P.MIGRATION_PHASE_STOP_AND_COPY, P.MIGRATION_PHASE_ROLLING_BACK],
  [P.MIGRATION_PHASE_STOP_AND_COPY]: [P.MIGRATION_PHASE_VERIFYING, P.MIGRATION_PHASE_COMMITTED, P.MIGRATION_PHASE_ROLLING_BACK],
  [P.MIGRATION_PHASE_VERIFYING]: [P.MIGRATION_PHASE_COMMITTED, P.MIGRATION_PHASE_ROLLING_BACK],
  // From the commit point on, only forward.
  [P.MIGRATION_PHASE_COMMITTED]: [P.MIGRATION_PHASE_RESUMING_TARGET],
  // DONE straight from RESUMING_TARGET: the target could not run the domain, which was resumed
  // on the source instead (outcome FAILED, RESUME_FAILED).
  [P.MIGRATION_PHASE_RESUMING_TARGET]: [P.MIGRATION_PHASE_CLEANING_UP, P.MIGRATION_PHASE_DONE],
  [P.MIGRATION_PHASE_CLEANING_UP]: [P.MIGRATION_PHASE_DONE],
  [P.MIGRATION_PHASE_ROLLING_BACK]: [P.MIGRATION_PHASE_DONE],
  [P.MIGRATION_PHASE_DONE]: [],
  [P.UNRECOGNIZED]: [],
};

export function canTransition(from: MigrationPhase, to: MigrationPhase): boolean {
  return NEXT[from]?.includes(to) ?? false;
}

export class IllegalTransition extends Error {
  constructor(
    readonly from: MigrationPhase,
    readonly to: MigrationPhase,
  ) {
    super(`illegal phase transition ${phaseName(from)} -> ${phaseName(to)}`);
    this.name = 'IllegalTransition';
  }
}

export function assertTransition(from: MigrationPhase, to: MigrationPhase): void {
  if (!canTransition(from, to)) throw new IllegalTransition(from, to);
}

/** Phases before the commit point: a failure or a cancel here rolls back. */
export function isBeforeCommit(phase: MigrationPhase): boolean {
  return (
    phase === P.MIGRATION_PHASE_PENDING ||
    phase === P.MIGRATION_PHASE_PREFLIGHT ||
    phase === P.MIGRATION_PHASE_COMPACTING ||
    phase === P.MIGRATION_PHASE_PREPARING_TARGET ||
    phase === P.MIGRATION_PHASE_PRECOPY ||
    phase === P.MIGRATION_PHASE_STOP_AND_COPY ||
    phase === P.MIGRATION_PHASE_VERIFYING
  );
}

/** Phases after the durable commit record and before DONE: recovery rolls these forward. */
export function isPastCommit(phase: MigrationPhase): boolean {
  return phase === P.MIGRATION_PHASE_COMMITTED || phase === P.MIGRATION_PHASE_RESUMING_TARGET || phase === P.MIGRATION_PHASE_CLEANING_UP;
}

export function isEnded(phase: MigrationPhase): boolean {
  return phase === P.MIGRATION_PHASE_DONE;
}

/** Which outcomes may be recorded when DONE is entered from `from`. */
export function allowedOutcomes(from: MigrationPhase): readonly MigrationOutcome[] {
  switch (from) {
    case P.MIGRATION_PHASE_CLEANING_UP:
      return [O.MIGRATION_OUTCOME_SUCCEEDED];
    case P.MIGRATION_PHASE_RESUMING_TARGET:
      return [O.MIGRATION_OUTCOME_FAILED];
    case P.MIGRATION_PHASE_ROLLING_BACK:
      return [O.MIGRATION_OUTCOME_ROLLED_BACK, O.MIGRATION_OUTCOME_CANCELLED, O.MIGRATION_OUTCOME_FAILED];
    case P.MIGRATION_PHASE_PENDING:
    case P.MIGRATION_PHASE_PREFLIGHT:
      // Nothing was touched yet: rejected (FAILED) or cancelled.
      return [O.MIGRATION_OUTCOME_FAILED, O.MIGRATION_OUTCOME_CANCELLED];
    default:
      return [];
  }
}

/** What cancelling a migration in `phase` does. */
export type CancelEffect =
  /** Accepted: the migration rolls back and ends CANCELLED. */
  | 'accept'
  /** Already cancelling or cancelled: succeeds without doing anything more. */
  | 'already'
  /** Too late: at or past the commit point, or ended otherwise. */
  | 'refuse-committed'
  /** Already rolling back after a failure: it ends ROLLED_BACK, not CANCELLED. */
  | 'refuse-rolling-back'
  | 'refuse-ended';

export function cancelEffect(phase: MigrationPhase, outcome: MigrationOutcome, cancelRequested: boolean): CancelEffect {
  if (phase === P.MIGRATION_PHASE_DONE) return outcome === O.MIGRATION_OUTCOME_CANCELLED ? 'already' : 'refuse-ended';
  if (isPastCommit(phase)) return 'refuse-committed';
  if (cancelRequested) return 'already';
  if (phase === P.MIGRATION_PHASE_ROLLING_BACK) return 'refuse-rolling-back';
  return 'accept';
}

/** What a coordinator taking over an unfinished migration does with it. */
export type RecoveryPlan = 'admit' | 'roll-back' | 'roll-forward' | 'none';

export function recoveryPlan(phase: MigrationPhase): RecoveryPlan {
  if (phase === P.MIGRATION_PHASE_PENDING) return 'admit';
  if (isPastCommit(phase)) return 'roll-forward';
  if (phase === P.MIGRATION_PHASE_DONE || phase === P.MIGRATION_PHASE_UNSPECIFIED) return 'none';
  // PREFLIGHT .. VERIFYING and ROLLING_BACK: the run that knew the details is gone; undo.
  return 'roll-back';
}

/** "PRECOPY" for MIGRATION_PHASE_PRECOPY. */
export function phaseName(phase: MigrationPhase): string {
  const name = MigrationPhase[phase] as string | undefined;
  return name ? name.replace(/^MIGRATION_PHASE_/, '') : String(phase);
}

export function outcomeName(outcome: MigrationOutcome): string {
  const name = MigrationOutcome[outcome] as string | undefined;
  return name ? name.replace(/^MIGRATION_OUTCOME_/, '') : String(outcome);
}
