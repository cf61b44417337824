// Human-readable progress of a migration from its events: one line per phase change and round.

import { MigrationPhase, type MigrationEvent } from '@ferry/proto';
import { formatBytes } from '@ferry/runtime';
import { enumName } from './migration-session';

const PAGE_WIRE = 4096 + 8;

export function describeEvent(e: MigrationEvent): string | undefined {
  const ev = e.event;
  if (!ev) return undefined;
  switch (ev.$case) {
    case 'phaseChanged':
      return `phase ${enumName(MigrationPhase, ev.phaseChanged.to, 'MIGRATION_PHASE_')}${ev.phaseChanged.reason ? ` (${ev.phaseChanged.reason})` : ''}`;
    case 'roundCompleted': {
      const r = ev.roundCompleted.round;
      if (!r) return undefined;
      const rate = Number(r.throughputBps) / 8;
      const remainingPages = Number(r.pagesDeferred) + Number(r.dirtyCount);
      const etaMs = rate > 0 && !r.final ? (remainingPages * PAGE_WIRE * 1000) / rate : 0;
      return [
        `${r.final ? 'final round' : `round ${r.round}`}:`,
        `sent ${Number(r.pagesSent)} pages (${formatBytes(Number(r.bytes))})`,
        `dirty ${Number(r.dirtyCount)}`,
        Number(r.pagesDeferred) > 0 ? `held ${Number(r.pagesDeferred)}` : '',
        `${formatBytes(rate)}/s`,
        `${Number(r.elapsedMs)} ms`,
        r.final ? '' : `expected downtime ${Number(r.expectedDowntimeMs)} ms`,
        etaMs > 0 ? `ETA ≥${(etaMs / 1000).toFixed(1)} s` : '',
      ]
        .filter(Boolean)
        .join('  ');
    }
    case 'migrationCompleted':
      return 'completed';
    case 'migrationFailed':
      return `failed: ${ev.migrationFailed.failure?.reason ?? 'unknown reason'}`;
    case 'migrationCancelled':
      return `cancelled${ev.migrationCancelled.reason ? `: ${ev.migrationCancelled.reason}` : ''}`;
  }
}
