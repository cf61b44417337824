// @ferry/balloon: the balloon manager's logic (BalloonManagerService), served by
// services/balloon-manager.
export { BalloonManager, MAX_SETTLE_TIMEOUT_MS, MAX_HEADROOM_FRACTION, type BalloonManagerOptions } from './balloon-manager';
export { BalloonFreeze } from './balloon-freeze';
export { compactGuest, DEFAULT_COMPACTION_SETTINGS, type CompactionSettings, type CompactionOutcome } from './compaction';
export { waitForBalloon, type SettleOptions, type SettleOutcome, type SettleResult } from './settle';
export { readGuestMemory, toGuestMemory, parseKiB, domainInfoOrNotFound, type GuestMemoryFigures } from './guest-memory';
