// Where the coordinator is: --coordinator, then FERRY_COORDINATOR, then the local lab's state.

import { readLabState } from '@ferry/lab';
import { FerryClient } from '@ferry/client';
import { UsageError } from './args';

export function coordinatorAddress(flag?: string, labDirFlag?: string): string {
  if (flag) return flag;
  if (process.env.FERRY_COORDINATOR) return process.env.FERRY_COORDINATOR;
  const lab = readLabState(labDirFlag);
  if (lab?.coordinator) return lab.coordinator;
  throw new UsageError('no coordinator: pass --coordinator HOST:PORT, set FERRY_COORDINATOR, or start a lab (ferry lab up)');
}

export function connect(values: { coordinator?: string; lab?: string }): FerryClient {
  return new FerryClient(coordinatorAddress(values.coordinator, values.lab));
}

/** Flags every command that talks to the coordinator accepts. */
export const COORDINATOR_FLAGS = {
  coordinator: { type: 'string' },
  lab: { type: 'string' },
} as const;
