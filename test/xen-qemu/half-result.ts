// What one half of the run (stock `xl migrate`, or Ferry) reports, as it appears in the JSON.

export interface HalfResult {
  ok: boolean;
  from?: string;
  to?: string;
  /** Sender-to-receiver bytes through the relay. */
  bytes?: number | null;
  bytes_back?: number | null;
  total_ms?: number | null;
  /** From the guest's own clock, corrected for the skew between the hosts' clocks. */
  downtime_ms?: number | null;
  rounds?: number | null;
  /** pfn entries (pages with data, and XTAB entries for pfns without) sent in each round. */
  pages_per_round?: number[];
  guest_continues?: boolean;
  checksums_ok?: boolean;
  source_gone?: boolean;
  target_running?: boolean;
  stream_verified?: boolean;
  stream_summary?: string;
  guest_clock_gap_ms?: number | null;
  host_clock_skew_ms?: number;
  tick_ms?: number | null;
  reasons?: string[];
  /** Ferry only: the coordinator's own record of the migration (rounds, pages, bytes, its downtime). */
  coordinator?: object;
  /** Why this half could not run or did not finish, naming the missing piece. */
  error?: string;
  /** How many times the half ran (a domU crashed by the emulator is retried, see run.ts). */
  attempts?: number;
  earlier_attempts?: string[];
}

export function failedHalf(error: unknown): HalfResult {
  return { ok: false, bytes: null, total_ms: null, downtime_ms: null, error: error instanceof Error ? error.message : String(error) };
}
