/**
 * Test hooks, for this repository's tests and benchmarks only: not exported from the package
 * entry (src/index.ts), so applications never depend on them.
 */
import { ABANDON, READ_SNAPSHOT, REPLACE_ROLLUP, SEGMENT_STORE, type UsageDb } from './db.ts';
import type { RollupRows } from './rollup/rollup-rows.ts';
import { hash128 } from './model/hash.ts';
import type { IdFilterStats } from './storage/id-filter.ts';
import type { DedupeCounters } from './storage/segment-store.ts';
import type { ReadSnapshot } from './storage/snapshot.ts';

/** Drops an instance without any I/O, as a crash of its process would (simulated disks). */
export function abandonForCrashTest(db: UsageDb): void {
  db[ABANDON]();
}

/** A pinned point-in-time view of the database; call `release()` when done with it. */
export function readSnapshot(db: UsageDb): ReadSnapshot {
  return db[READ_SNAPSHOT]();
}

/** Rewrites rollup segment `id` with `mutate` applied to its rows (valid checksums, wrong numbers). */
export function damageRollupForTest(
  db: UsageDb,
  id: number,
  mutate: (rows: RollupRows) => void,
): Promise<void> {
  return db[REPLACE_ROLLUP](id, mutate);
}

/** What the dedupe path holds and has done: the database id filter, probes, cache bytes. */
export interface DedupeState {
  /** One probe of the database id filter for `eventId` (false: no segment holds it). */
  mayBeStored(eventId: string): boolean;
  filter: IdFilterStats;
  counters: DedupeCounters;
  cacheBytes: { segmentFilters: number; idIndexChunks: number; pointChunks: number };
  /** Waits for a background rebuild or write of the id filter. */
  idle(): Promise<void>;
  /** Sets the memory per-segment filters read on demand may keep (small, to outgrow it in a test). */
  limitSegmentFilterCache(bytes: number): void;
}

export function dedupeState(db: UsageDb): DedupeState {
  const segments = db[SEGMENT_STORE]();
  return {
    mayBeStored: (eventId) => {
      const h = hash128(eventId);
      return segments.idFilter.mayContain(h.h1, h.h2);
    },
    filter: segments.idFilter.stats,
    counters: { ...segments.dedupe },
    cacheBytes: segments.dedupeCacheBytes,
    idle: () => segments.idFilter.idle(),
    limitSegmentFilterCache: (bytes) => {
      segments.filterCacheBytesMax = bytes;
    },
  };
}
