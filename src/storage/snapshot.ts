/**
 * What a reader sees: the committed segments of one pinned version plus the acknowledged
 * memtable rows at the same instant. The query engine and the export read only through this.
 *
 * Invariant: taken synchronously, so no event is both in a segment and in a memtable of it;
 * the version stays pinned (its files are not deleted) until `release()`.
 */
import type { EventColumns } from '../model/columns.ts';
import type { RollupSource } from '../query/types.ts';
import type { RollupSegmentEntry } from './manifest.ts';
import type { PartitionSlice, SegmentStore } from './segment-store.ts';

export interface ReadSnapshot {
  bucketCount: number;
  segments: readonly PartitionSlice[];
  store: SegmentStore;
  memtables: EventColumns[];
  /** The version's rollup segments and where to read them. */
  rollups: { entries: readonly RollupSegmentEntry[]; store: RollupSource };
  /** Ends the pin (idempotent). */
  release(): void;
}
