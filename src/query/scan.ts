/**
 * The planner's pruning and the block iteration shared by aggregate queries and the audit
 * listing: which segments to open, which blocks to read, and which columns of each block.
 *
 * Pruning order (cheapest first):
 * 1. manifest entry: time range; and, when the entry names its partition (one segment per
 *    (day, bucket) layout), the bucket of the account and the account range;
 * 2. segment metadata of the opened segment: its sorted account set and its
 *    product/meter/model value sets against the equality filters;
 * 3. block metadata: time and account range (`selectBlocks`), and the bucket of the block's
 *    accounts — a block never spans two (day, bucket) partitions, whether a segment file
 *    holds one partition or a whole flush clustered by partition.
 * Only the requested columns of the chosen blocks are decoded, through the chunk cache.
 *
 * Invariants:
 * - pruning only drops segments and blocks that cannot hold a matching row: every check here
 *   is a necessary condition of the row filters applied afterwards;
 * - every segment of the snapshot is counted in exactly one of segmentsPruned and
 *   segmentsOpened; every block of an opened segment in exactly one of blocksRead and
 *   blocksSkipped.
 */
import type { ColumnBatch, ColumnName } from '../model/columns.ts';
import { accountBucket } from '../storage/partition.ts';
import type { ChunkCache, SegmentChunks } from './chunk-cache.ts';
import { lowerBound } from '../util/lower-bound.ts';
import type {
  BlockMetaView,
  QuerySnapshot,
  QueryStats,
  SegmentEntryView,
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
  /** Columns `visit` may decode itself (e.g. event ids), read from disk with the others. */
  extraColumns?: readonly ColumnName[];
  /**
   * Takes a block from what the cache holds of it without reading its columns (a block
   * summary); true when taken, and the block is then neither read nor visited.
   */
  takeCached?(seg: SegmentChunks, entry: SegmentEntryView, block: BlockMetaView, blockIndex: number): boolean;
  /** Whether the chunks decoded for the block `columnsFor` was last asked about go to the cache's cold end. */
  coldInsert?(): boolean;
  visit(
    batch: ColumnBatch,
    block: BlockMetaView,
    segment: SegmentEntryView,
    blockIndex: number,
    reader: SegmentReaderView,
  ): void;
}

export function emptyStats(segmentsConsidered: number): QueryStats {
  return {
    path: 'raw',
    fallback: null,
    rawTail: false,
    rollupSegmentsRead: 0,
    rollupRows: 0,
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

/** Whether some allowed account lies in [min, max] (accounts sorted). */
export function anyAccountInRange(accounts: readonly string[], min: string, max: string): boolean {
  const i = lowerBound(accounts, min);
  return i < accounts.length && accounts[i] <= max;
}

/** Whether two sorted lists share a value. */
function anyShared(allowed: readonly string[], present: readonly string[]): boolean {
  for (const a of allowed) {
    const i = lowerBound(present, a);
    if (i < present.length && present[i] === a) return true;
  }
  return false;
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
  entry: SegmentEntryView,
  target: ScanTarget,
  buckets: ReadonlySet<number> | null,
): boolean {
  if (entry.max_ts < target.fromMs || entry.min_ts >= target.toMs) return false;
  const accounts = target.accountIds;
  if (accounts === null) return true;
  if (accounts.length === 0) return false;
  const hints = entry;
  if (buckets !== null && hints.bucket !== undefined && !buckets.has(hints.bucket)) return false;
  if (hints.min_account !== undefined && hints.max_account !== undefined) {
    return anyAccountInRange(accounts, hints.min_account, hints.max_account);
  }
  return true;
}

/** Segment-metadata pruning: value sets of the opened segment (accountIds is sorted). */
export function segmentMetaMayMatch(meta: SegmentMetaView, target: ScanTarget): boolean {
  if (target.accountIds !== null && !anyShared(target.accountIds, meta.accountIds)) return false;
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

/** Entries by bucket, per entry list (a snapshot's list is one array until the next flush). */
interface BucketIndex {
  bucketCount: number;
  byBucket: Map<number, SegmentEntryView[]>;
  /** Entries that do not name a bucket (a segment file of many partitions). */
  anyBucket: SegmentEntryView[];
}

const bucketIndexes = new WeakMap<readonly SegmentEntryView[], BucketIndex>();

/**
 * The entries a scan must consider, in snapshot order: all of them, or for given accounts
 * only the entries of their buckets (and any entry that does not name its bucket). The rest
 * are pruned by the manifest without being looked at one by one.
 */
export function candidateEntries(
  snapshot: QuerySnapshot,
  buckets: ReadonlySet<number> | null,
): readonly SegmentEntryView[] {
  const all = snapshot.segments;
  if (buckets === null) return all;
  let index = bucketIndexes.get(all);
  if (index === undefined || index.bucketCount !== snapshot.bucketCount) {
    index = { bucketCount: snapshot.bucketCount, byBucket: new Map(), anyBucket: [] };
    for (const e of all) {
      if (e.bucket === undefined) {
        index.anyBucket.push(e);
        continue;
      }
      const list = index.byBucket.get(e.bucket);
      if (list === undefined) index.byBucket.set(e.bucket, [e]);
      else list.push(e);
    }
    bucketIndexes.set(all, index);
  }
  const parts: SegmentEntryView[][] = [index.anyBucket];
  for (const b of buckets) parts.push(index.byBucket.get(b) ?? []);
  return parts.length === 2 && parts[0].length === 0 ? parts[1] : parts.flat();
}

/** Bucket of each block (of its accounts), computed once per segment reader. */
const blockBucketCache = new WeakMap<
  readonly BlockMetaView[],
  { bucketCount: number; buckets: Int32Array }
>();

function blockBuckets(blocks: readonly BlockMetaView[], bucketCount: number): Int32Array {
  let known = blockBucketCache.get(blocks);
  if (known === undefined || known.bucketCount !== bucketCount) {
    const buckets = new Int32Array(blocks.length);
    for (let b = 0; b < blocks.length; b++) buckets[b] = accountBucket(blocks[b].minAccountId, bucketCount);
    known = { bucketCount, buckets };
    blockBucketCache.set(blocks, known);
  }
  return known.buckets;
}

/** Columns whose need varies per block (range and account filters): read with the rest. */
const PREFETCH_ALWAYS: readonly ColumnName[] = ['timestamp_ms', 'account_id'];

const ALL_BLOCKS: number[][] = [];

/** [0, 1, ..., n-1], shared. */
function allBlocks(n: number): readonly number[] {
  let list = ALL_BLOCKS[n];
  if (list === undefined) {
    list = Array.from({ length: n }, (_, i) => i);
    ALL_BLOCKS[n] = list;
  }
  return list;
}

/** The blocks of an opened segment that may hold matching rows. */
export function selectBlocks(
  reader: SegmentReaderView,
  target: ScanTarget,
  entry: SegmentEntryView,
  buckets: ReadonlySet<number> | null,
  bucketCount: number,
): readonly number[] {
  const accounts = target.accountIds;
  const blocks = reader.meta.blocks;
  if (accounts === null) {
    // The whole segment inside the range: every block (the common case of month queries).
    if (entry.min_ts >= target.fromMs && entry.max_ts < target.toMs) return allBlocks(blocks.length);
    return reader.selectBlocks({ fromMs: target.fromMs, toMs: target.toMs });
  }
  const candidates =
    accounts.length === 1
      ? reader.selectBlocks({ accountId: accounts[0], fromMs: target.fromMs, toMs: target.toMs })
      : reader
          .selectBlocks({ fromMs: target.fromMs, toMs: target.toMs })
          .filter((b) => anyAccountInRange(accounts, blocks[b].minAccountId, blocks[b].maxAccountId));
  // A partition slice is one bucket, already checked against the manifest entry.
  if (buckets === null || entry.bucket !== undefined) return candidates;
  const ofBlock = blockBuckets(blocks, bucketCount);
  return candidates.filter((b) => buckets.has(ofBlock[b]));
}

/** An opened entry with the blocks a scan will visit. */
interface OpenedEntry {
  entry: SegmentEntryView;
  seg: ReturnType<ChunkCache['segment']>;
  reader: SegmentReaderView;
  blocks: readonly number[];
}

/**
 * Visits every block that may match, segment by segment in the given order. Consecutive
 * entries of one file (partition slices) are opened first and their cold chunks read together,
 * then visited. `stopBefore`, when given, is asked before each segment; a true answer ends the
 * scan (the audit listing stops once later segments cannot change its page).
 */
export async function scanSegments(
  snapshot: QuerySnapshot,
  segments: readonly SegmentEntryView[],
  target: ScanTarget,
  cache: ChunkCache,
  stats: QueryStats,
  visitor: BlockVisitor,
  stopBefore?: (entry: SegmentEntryView) => boolean | Promise<boolean>,
): Promise<void> {
  const buckets = bucketsOf(target, snapshot.bucketCount);
  const store = snapshot.store;
  const extra = visitor.extraColumns ?? [];
  for (let i = 0; i < segments.length;) {
    // One file's run of entries (a single entry when entries do not name their file).
    let end = i + 1;
    const file = segments[i].segment_id;
    if (file !== undefined) while (end < segments.length && segments[end].segment_id === file) end++;
    const opened: OpenedEntry[] = [];
    let stopped = false;
    for (let k = i; k < end; k++) {
      const entry = segments[k];
      if (stopBefore !== undefined && (await stopBefore(entry))) {
        stats.segmentsPruned += segments.length - k;
        stopped = true;
        break;
      }
      const one = await openEntry(snapshot, entry, target, buckets, cache, stats, visitor);
      if (one !== null) opened.push(one);
    }
    if (store.prefetch !== undefined && opened.length > 0) {
      // One read per column run of the file for the blocks the cache lacks.
      const requests = opened.map(({ entry, seg, reader, blocks }) => {
        const names = [
          ...new Set([...visitor.columnsFor(reader.meta.blocks[blocks[0]]), ...PREFETCH_ALWAYS, ...extra]),
        ];
        return { entry, reader, names, blocks: blocks.filter((b) => !cache.holds(seg, names, b)) };
      });
      await store.prefetch(requests.filter((r) => r.blocks.length > 0));
    }
    for (const o of opened) await visitEntry(store, o, cache, stats, visitor, extra);
    if (stopped) return;
    i = end;
  }
}

/** Prunes by manifest and segment metadata; the opened reader and its blocks, or null. */
async function openEntry(
  snapshot: QuerySnapshot,
  entry: SegmentEntryView,
  target: ScanTarget,
  buckets: ReadonlySet<number> | null,
  cache: ChunkCache,
  stats: QueryStats,
  visitor: BlockVisitor,
): Promise<OpenedEntry | null> {
  if (!segmentMayMatch(entry, target, buckets)) {
    stats.segmentsPruned++;
    return null;
  }
  const store = snapshot.store;
  const seg = cache.segment(store, entry);
  let reader = cache.reader(seg);
  if (reader === null) {
    reader = await store.reader(entry);
    // A source that prefetches hands out sparse readers: its own caches (bounded there) hold
    // the chunk bytes, the reader only its block metadata. Else the reader holds the file.
    const held = store.prefetch !== undefined ? 512 + reader.meta.blocks.length * 128 : entry.size_bytes;
    cache.keepReader(seg, reader, held);
  }
  stats.segmentsOpened++;
  const meta = reader.meta;
  let blocks = segmentMetaMayMatch(meta, target)
    ? selectBlocks(reader, target, entry, buckets, snapshot.bucketCount)
    : [];
  let taken = 0;
  if (visitor.takeCached !== undefined && blocks.length > 0) {
    const rest: number[] = [];
    for (const b of blocks) {
      const block = meta.blocks[b];
      if (visitor.takeCached(seg, entry, block, b)) {
        taken++;
        stats.blocksRead++;
        stats.rowsScanned += block.rowCount;
      } else rest.push(b);
    }
    blocks = rest;
  }
  stats.blocksSkipped += meta.blocks.length - blocks.length - taken;
  if (blocks.length + taken > 0) stats.segmentsScanned++;
  if (blocks.length === 0) return null;
  return { entry, seg, reader, blocks };
}

async function visitEntry(
  store: QuerySnapshot['store'],
  { entry, seg, reader, blocks }: OpenedEntry,
  cache: ChunkCache,
  stats: QueryStats,
  visitor: BlockVisitor,
  extra: readonly ColumnName[],
): Promise<void> {
  const meta = reader.meta;
  for (let k = 0; k < blocks.length; k++) {
    const b = blocks[k];
    const block = meta.blocks[b];
    const names = visitor.columnsFor(block);
    // A cached chunk may have been evicted since the bulk read: then read that block now.
    if (store.prefetch !== undefined && !cache.holds(seg, names, b))
      await store.prefetch([
        { entry, reader, names: extra.length > 0 ? [...names, ...extra] : names, blocks: [b] },
      ]);
    else if (store.prefetch !== undefined && extra.length > 0)
      await store.prefetch([{ entry, reader, names: extra, blocks: [b] }]);
    const cold = visitor.coldInsert?.() ?? false;
    const batch = cache.block(seg, store, entry, reader, b, block.rowCount, names, stats, cold);
    stats.blocksRead++;
    stats.rowsScanned += block.rowCount;
    visitor.visit(batch, block, entry, b, reader);
  }
}
