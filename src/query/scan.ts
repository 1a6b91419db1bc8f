/**
 * The planner's pruning and the block iteration shared by aggregate queries and the audit
 * listing: which segments to open, which blocks to read, and which columns of each block.
 *
 * Pruning order (cheapest first): manifest (bucket of the account, time range, account
 * range) -> segment metadata (account/product/meter/model value sets) -> block metadata
 * (time and account range, via `selectBlocks`). Only the requested columns of the chosen
 * blocks are decoded, through the chunk cache.
 *
 * Invariants:
 * - pruning only drops segments and blocks that cannot hold a matching row: every check here
 *   is a necessary condition of the row filters applied afterwards;
 * - every segment of the snapshot is counted in exactly one of segmentsPruned and
 *   segmentsOpened; every block of an opened segment in exactly one of blocksRead and
 *   blocksSkipped.
 */
import type { ColumnBatch, ColumnName } from '../model/columns.ts';
import type { SegmentEntry } from '../storage/manifest.ts';
import { accountBucket } from '../storage/partition.ts';
import type { ChunkCache } from './chunk-cache.ts';
import type {
  BlockMetaView,
  QuerySnapshot,
  QueryStats,
  SegmentMetaView,
  SegmentReaderView,
} from './types.ts';

/** What a scan may skip by: necessary conditions on rows, in storage terms. */
export interface ScanTarget {
  /** Allowed accounts (sorted, unique), or null for all. */
  accountIds: readonly string[] | null;
  fromMs: number;
  toMs: number;
  /** Allowed values for segment value-set pruning; null = any. */
  productIds: ReadonlySet<string | null> | null;
  meterIds: ReadonlySet<string | null> | null;
  modelIds: ReadonlySet<string | null> | null;
}

export interface BlockVisitor {
  /** Columns to decode for this block (may depend on whether the block is inside the range). */
  columnsFor(block: BlockMetaView): readonly ColumnName[];
  visit(
    batch: ColumnBatch,
    block: BlockMetaView,
    segment: SegmentEntry,
    blockIndex: number,
    reader: SegmentReaderView,
  ): void;
}

export function emptyStats(segmentsConsidered: number): QueryStats {
  return {
    path: 'raw',
    segmentsConsidered,
    segmentsPruned: 0,
    segmentsOpened: 0,
    segmentsScanned: 0,
    blocksRead: 0,
    blocksSkipped: 0,
    rowsScanned: 0,
    memtableRows: 0,
    cacheHits: 0,
    cacheMisses: 0,
  };
}

/** Smallest index i with sorted[i] >= value. */
function lowerBound(sorted: readonly string[], value: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether some allowed account lies in [min, max] (accounts sorted). */
export function anyAccountInRange(accounts: readonly string[], min: string, max: string): boolean {
  const i = lowerBound(accounts, min);
  return i < accounts.length && accounts[i] <= max;
}

function anyPresent(
  allowed: ReadonlySet<string | null> | null,
  present: readonly (string | null)[],
): boolean {
  if (allowed === null) return true;
  for (const v of present) if (allowed.has(v)) return true;
  return false;
}

/** Manifest-level pruning: no file is touched. */
export function segmentMayMatch(
  entry: SegmentEntry,
  target: ScanTarget,
  buckets: ReadonlySet<number> | null,
): boolean {
  if (entry.max_ts < target.fromMs || entry.min_ts >= target.toMs) return false;
  const accounts = target.accountIds;
  if (accounts === null) return true;
  if (buckets !== null && !buckets.has(entry.bucket)) return false;
  return anyAccountInRange(accounts, entry.min_account, entry.max_account);
}

/** Segment-metadata pruning: value sets of the opened segment. */
export function segmentMetaMayMatch(meta: SegmentMetaView, target: ScanTarget): boolean {
  if (target.accountIds !== null && !target.accountIds.some((a) => meta.accountIds.includes(a))) return false;
  return (
    anyPresent(target.productIds, meta.productIds) &&
    anyPresent(target.meterIds, meta.meterIds) &&
    anyPresent(target.modelIds, meta.modelIds)
  );
}

export function bucketsOf(target: ScanTarget, bucketCount: number): Set<number> | null {
  if (target.accountIds === null) return null;
  return new Set(target.accountIds.map((a) => accountBucket(a, bucketCount)));
}

/** The blocks of an opened segment that may hold matching rows. */
export function selectBlocks(
  reader: {
    meta: SegmentMetaView;
    selectBlocks(f: { accountId?: string; fromMs?: number; toMs?: number }): number[];
  },
  target: ScanTarget,
): number[] {
  const accounts = target.accountIds;
  if (accounts !== null && accounts.length === 1) {
    return reader.selectBlocks({ accountId: accounts[0], fromMs: target.fromMs, toMs: target.toMs });
  }
  const inRange = reader.selectBlocks({ fromMs: target.fromMs, toMs: target.toMs });
  if (accounts === null) return inRange;
  const blocks = reader.meta.blocks;
  return inRange.filter((b) => anyAccountInRange(accounts, blocks[b].minAccountId, blocks[b].maxAccountId));
}

/**
 * Visits every block that may match, segment by segment in the given order. `stopBefore`,
 * when given, is asked before each segment; a true answer ends the scan (the audit listing
 * stops once later segments cannot change its page).
 */
export async function scanSegments(
  snapshot: QuerySnapshot,
  segments: readonly SegmentEntry[],
  target: ScanTarget,
  cache: ChunkCache,
  stats: QueryStats,
  visitor: BlockVisitor,
  stopBefore?: (entry: SegmentEntry) => boolean,
): Promise<void> {
  const buckets = bucketsOf(target, snapshot.bucketCount);
  const store = snapshot.store;
  for (let i = 0; i < segments.length; i++) {
    const entry = segments[i];
    if (stopBefore?.(entry)) {
      stats.segmentsPruned += segments.length - i;
      return;
    }
    if (!segmentMayMatch(entry, target, buckets)) {
      stats.segmentsPruned++;
      continue;
    }
    const reader = await store.reader(entry);
    stats.segmentsOpened++;
    const meta = reader.meta;
    const blocks = segmentMetaMayMatch(meta, target) ? selectBlocks(reader, target) : [];
    stats.blocksSkipped += meta.blocks.length - blocks.length;
    if (blocks.length === 0) continue;
    stats.segmentsScanned++;
    for (const b of blocks) {
      const block = meta.blocks[b];
      const names = visitor.columnsFor(block);
      const batch = cache.block(
        store,
        entry,
        b,
        block.rowCount,
        names,
        (missing) => store.decode(entry, reader, missing, [b]),
        stats,
      );
      stats.blocksRead++;
      stats.rowsScanned += block.rowCount;
      visitor.visit(batch, block, entry, b, reader);
    }
  }
}
