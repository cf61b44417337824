// ListMigrations: filters, newest-first order and paging over migration records. Pure.

import { MigrationPhase, type ListMigrationsRequest, type Migration } from '@ferry/proto';
import { invalidArgument } from '@ferry/runtime';
import { withoutRounds } from './journal';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export interface MigrationPage {
  migrations: Migration[];
  nextPageToken: string;
}

export function matches(m: Migration, q: ListMigrationsRequest): boolean {
  if (q.domainName && m.domainName !== q.domainName) return false;
  if (q.host && m.sourceHost !== q.host && m.targetHost !== q.host) return false;
  if (q.phase && m.phase !== q.phase) return false;
  if (q.outcome && m.outcome !== q.outcome) return false;
  if (q.activeOnly && m.phase === MigrationPhase.MIGRATION_PHASE_DONE) return false;
  return true;
}

/** Newest first; ties (same millisecond) by id, descending, so the order is total and stable. */
export function newestFirst(a: Migration, b: Migration): number {
  const ta = a.createdAt?.getTime() ?? 0;
  const tb = b.createdAt?.getTime() ?? 0;
  if (ta !== tb) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * A page token names the last migration of the previous page (its creation time and id), so a
 * page stays correct when newer migrations arrive in between.
 */
export function encodePageToken(m: Migration): string {
  return Buffer.from(JSON.stringify([m.createdAt?.getTime() ?? 0, m.id])).toString('base64url');
}

function decodePageToken(token: string): { time: number; id: string } {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'string') return { time: v[0], id: v[1] };
  } catch {
    // fall through
  }
  throw invalidArgument('INVALID_PAGE_TOKEN', 'page_token is not a token this service returned');
}

export function pageOf(all: readonly Migration[], q: ListMigrationsRequest): MigrationPage {
  const size = q.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(q.pageSize, MAX_PAGE_SIZE);
  let list = all.filter((m) => matches(m, q)).sort(newestFirst);
  if (q.pageToken) {
    const after = decodePageToken(q.pageToken);
    const marker = { createdAt: new Date(after.time), id: after.id } as Migration;
    list = list.filter((m) => newestFirst(marker, m) < 0);
  }
  const page = list.slice(0, size);
  const more = list.length > size;
  return { migrations: page.map(withoutRounds), nextPageToken: more ? encodePageToken(page[page.length - 1]) : '' };
}
