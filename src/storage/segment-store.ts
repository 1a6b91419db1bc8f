/**
 * The committed raw segments, as readers see them: each segment file is cut into partition
 * slices (one per (UTC day, bucket) run of blocks, from the file's footer), which is what the
 * query engine and the export prune and scan. Also a bounded cache of verified file readers.
 *
 * Invariants:
 * - a reader is only built from bytes whose size and CRC32C equal the manifest entry
 *   (fail closed: a corrupt or swapped file raises USAGEDB_ERR_SEGMENT_CORRUPT, never data);
 * - footers (partition index, where the id filter and id index lie) of every committed
 *   segment are in memory, loaded by `prepare` before the segment becomes visible, so the
 *   switch itself is synchronous;
 * - the database id filter (id-filter.ts) holds the ids of every visible segment: a flush adds
 *   its ids in the synchronous step of its commit that makes the segment visible;
 * - per-segment id filters and id index chunks are read on demand into caches bounded in bytes;
 *   nothing kept per segment grows with its rows beyond the footer;
 * - cached file bytes stay under `cacheBytesMax` (least recently used dropped first).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { assert, UsageDbError } from '../errors.ts';
import { COLUMN_NAMES, type ColumnBatch, type ColumnName } from '../model/columns.ts';
import { packedIdAt, type PackedIds } from '../model/packed-ids.ts';
import { hash128Into } from '../model/hash.ts';
import type { BloomFilter } from './encoding/bloom-filter.ts';
import { type FileSystem, isFsError, type ReadFile, readSmall } from './fs/file-system.ts';
import { ioErrorCode } from './fs/io-error.ts';
import { segmentPath } from './layout.ts';
import type { SegmentEntry } from './manifest.ts';
import { accountBucket, utcDay } from './partition.ts';
import type { BlockMeta, SegmentMeta } from './segment/segment-format.ts';
import {
  type IdIndexLayout,
  verifyIdIndexChunk,
  readSegmentFilter,
  readSegmentFooter,
  readSegmentTail,
  SegmentReader,
} from './segment/segment-reader.ts';
import { FORMAT_VERSION_3, type RegionRef } from './segment/segment-format.ts';
import { lowerBound } from '../util/lower-bound.ts';
import {
  buildIdIndex,
  type IdIndex,
  idIndexChunkEntries,
  idIndexChunkBits,
  idIndexPayloadAt,
  idIndexRowAt,
  rowBitsOf,
  searchIdIndexEntries,
  storedHashShift,
} from './id-index.ts';
import { type IdFilter, type IdHashes } from './id-filter.ts';
import {
  decodeEventIdChunk,
  hashEventIds,
  type IdChunkPart,
  type IdHashRequest,
  INLINE_ID_HASH_ROWS_MAX,
} from './id-hashes.ts';

/** A row an id index names for an id hash, and its payload hash words (h1, h2) if stored. */
export interface IdIndexHit {
  row: number;
  payload: [number, number] | null;
}

/** One (day, bucket) partition inside a segment file: a contiguous run of its blocks. */
export interface PartitionSlice {
  /** Unique per slice: segment_id * 2^20 + index of the slice in its file. */
  id: number;
  segment_id: number;
  first_block: number;
  block_count: number;
  day: string;
  bucket: number;
  rows: number;
  min_ts: number;
  max_ts: number;
  min_account: string;
  max_account: string;
  /** The segment file's CRC32C (identifies the bytes, for caches). */
  crc32c: number;
  /** This slice's share of the file's bytes (for cache accounting). */
  size_bytes: number;
}

/** What a scan needs of a slice: its metadata and block selection (indexes relative to the slice). */
export interface SliceReader {
  readonly meta: {
    rowCount: number;
    accountIds: readonly string[];
    productIds: readonly string[];
    meterIds: readonly string[];
    modelIds: readonly (string | null)[];
    blocks: readonly BlockMeta[];
  };
  selectBlocks(filter: { accountId?: string; fromMs?: number; toMs?: number }): number[];
}

interface SegmentFile {
  entry: SegmentEntry;
  meta: SegmentMeta;
  /** Where the file's own id filter lies (read on demand into the filter cache). */
  bloom: RegionRef;
  /** The stored id index's chunks (format 2); null for a format 1 file (index built on demand). */
  idIndex: IdIndexLayout | null;
  slices: PartitionSlice[];
}

/** Counters of the dedupe path (stats, and tests that bound the work per event). */
export interface DedupeCounters {
  /** Lookups that went past the database filter (its maybes: stored ids and false positives). */
  coldLookups: number;
  /** Probes of per-segment filters (only after the database filter said maybe). */
  segmentFilterProbes: number;
  segmentFilterLoads: number;
  idIndexChunkReads: number;
  /** Format 1 files whose whole id index was built from their event ids. */
  idIndexBuilds: number;
}

/**
 * Memory for per-segment id filters read on demand: the filters of ~16M stored events at 12
 * bits per id (flush.ts). Past that, a maybe reads the filters that do not fit.
 */
const FILTER_CACHE_BYTES_MAX = 24 * 1024 * 1024;
/** Memory for id index chunks (as stored, verified) and format 1 files' built indexes. */
const ID_INDEX_CACHE_BYTES_MAX = 16 * 1024 * 1024;
/** Cache key of a format 1 file's whole id index (chunk numbers stay below it). */
const WHOLE_INDEX_CHUNK = 65_535;

const SLICE_ID_FACTOR = 2 ** 20;
/** Memory for point-lookup images (only the chunks actually read are resident). */
const POINT_CACHE_BYTES_MAX = 32 * 1024 * 1024;
/** Missing blocks of one column this close together are read in one span. */
const SPAN_GAP_BLOCKS_MAX = 8;
/** event_id chunks read at once when every id of a file is decoded (~250 KB). */
const EVENT_ID_SPAN_BLOCKS = 16;
/** Idle segment file handles kept open for point reads. */
const OPEN_HANDLES_MAX = 64;

/**
 * What point lookups hold of a segment file: its parsed footer and the chunks read so far
 * (not a buffer of the file's size: ~40 such buffers of ~5 MiB each were resident at 10M
 * events). Each chunk's CRC is verified when decoded, so no byte read is trusted unchecked.
 */
interface PointImage {
  /** Chunk index -> its bytes, for the chunks read so far. */
  chunks: Map<number, Uint8Array>;
  reader: SegmentReader;
  /** reader.chunkLayout(), computed once: ~30k entries for a large flush file. */
  layout: ReturnType<SegmentReader['chunkLayout']>;
  loadedBytes: number;
}
export const DEFAULT_SEGMENT_CACHE_BYTES = 128 * 1024 * 1024;

/** A failure to read a segment: the disk's (I/O error, kept as such) or the bytes' (corruption). */
function corrupt(entryId: number, what: string, cause?: unknown): UsageDbError {
  if (isFsError(cause) && cause.code !== 'ENOENT') {
    return new UsageDbError(ioErrorCode(cause.code), `segment ${entryId}: ${what}`, { cause });
  }
  return new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', `segment ${entryId}: ${what}`, { cause });
}

/** Runs a decode of a segment file's chunks; any failure is that file's corruption. */
function decodedOrCorrupt<T>(segmentId: number, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw corrupt(segmentId, (err as Error).message, err);
  }
}

/** Cuts a file's blocks into partition slices: blocks never span partitions (flush.ts). */
function slicesOf(entry: SegmentEntry, meta: SegmentMeta, bucketCount: number): PartitionSlice[] {
  const slices: PartitionSlice[] = [];
  let current: PartitionSlice | null = null;
  meta.blocks.forEach((b, index) => {
    const day = utcDay(b.minTimestampMs);
    const bucket = accountBucket(b.minAccountId, bucketCount);
    if (current === null || current.day !== day || current.bucket !== bucket) {
      current = {
        id: entry.id * SLICE_ID_FACTOR + slices.length,
        segment_id: entry.id,
        first_block: index,
        block_count: 0,
        day,
        bucket,
        rows: 0,
        min_ts: b.minTimestampMs,
        max_ts: b.maxTimestampMs,
        min_account: b.minAccountId,
        max_account: b.maxAccountId,
        crc32c: entry.crc32c,
        size_bytes: 0,
      };
      slices.push(current);
    }
    assert(utcDay(b.maxTimestampMs) === day, `segment ${entry.id} block ${index} spans two days`);
    current.block_count++;
    current.rows += b.rowCount;
    current.min_ts = Math.min(current.min_ts, b.minTimestampMs);
    current.max_ts = Math.max(current.max_ts, b.maxTimestampMs);
    if (b.maxAccountId > current.max_account) current.max_account = b.maxAccountId;
  });
  assert(slices.length < SLICE_ID_FACTOR, `segment ${entry.id} has too many partitions`);
  for (const slice of slices)
    slice.size_bytes = Math.ceil((entry.size_bytes * slice.rows) / Math.max(1, meta.rowCount));
  return slices;
}

function cachedBytes(value: Uint8Array | IdIndex): number {
  return value instanceof Uint8Array ? value.byteLength : value.hashes.byteLength + value.rows.byteLength;
}

/** Smallest index i with sorted[i] > value. */
function upperBound(sorted: readonly string[], value: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function overlaps(b: BlockMeta, filter: { accountId?: string; fromMs?: number; toMs?: number }): boolean {
  if (filter.fromMs !== undefined && b.maxTimestampMs < filter.fromMs) return false;
  if (filter.toMs !== undefined && b.minTimestampMs >= filter.toMs) return false;
  if (
    filter.accountId !== undefined &&
    (filter.accountId < b.minAccountId || filter.accountId > b.maxAccountId)
  ) {
    return false;
  }
  return true;
}

export class SegmentStore {
  private readonly fs: FileSystem;
  private readonly root: string;
  private readonly bucketCount: number;
  private readonly cacheBytesMax: number;
  private readonly readers = new Map<number, SegmentReader>();
  private readonly points = new Map<number, PointImage>();
  /**
   * The reader of each evicted point image, kept for its parsed footer (footers of live
   * segments stay in memory anyway): reloading the image then costs no footer read or parse.
   */
  private readonly parkedReaders = new Map<number, SegmentReader>();
  private readonly handles = new Map<number, { file: ReadFile; users: number }>();
  private pointBytes = 0;
  /** The file reader behind each slice reader handed out (it outlives cache eviction). */
  private readonly fileOfSlice = new WeakMap<SliceReader, SegmentReader>();
  /** The point image each sparse file reader decodes from. */
  private readonly imageOfReader = new WeakMap<SegmentReader, PointImage>();
  /** Slice views handed out, per file reader (they live as long as it does). */
  private readonly sliceViews = new WeakMap<SegmentReader, Map<number, SliceReader>>();
  private cacheBytes = 0;
  private readonly prepared = new Map<number, SegmentFile>();
  private readonly slicesByVersion = new WeakMap<readonly SegmentEntry[], PartitionSlice[]>();
  /** Prepared and not yet visible: a commit naming them is on its way. */
  private readonly pending = new Set<number>();
  private files: SegmentFile[] = [];
  private filterCache = new Map<number, BloomFilter>();
  private filterCacheBytes = 0;
  /** Memory for per-segment id filters read on demand (tests make it small). */
  filterCacheBytesMax = FILTER_CACHE_BYTES_MAX;
  private indexCache = new Map<number, Uint8Array | IdIndex>();
  private indexCacheBytes = 0;
  private idFilterOrNull: IdFilter | null = null;
  readonly dedupe: DedupeCounters = {
    coldLookups: 0,
    segmentFilterProbes: 0,
    segmentFilterLoads: 0,
    idIndexChunkReads: 0,
    idIndexBuilds: 0,
  };
  private allSlices: PartitionSlice[] = [];
  private byBucket = new Map<number, PartitionSlice[]>();

  constructor(
    fs: FileSystem,
    root: string,
    bucketCount: number,
    cacheBytesMax = DEFAULT_SEGMENT_CACHE_BYTES,
  ) {
    this.fs = fs;
    this.root = root;
    this.bucketCount = bucketCount;
    this.cacheBytesMax = cacheBytesMax;
  }

  /** The database id filter, once `setIdFilter` installed it (at open). */
  get idFilter(): IdFilter {
    assert(this.idFilterOrNull !== null, 'the id filter is not open');
    return this.idFilterOrNull;
  }

  setIdFilter(filter: IdFilter): void {
    this.idFilterOrNull = filter;
  }

  /**
   * Reads the footer (partition index, where the id filter and index lie) of a segment about
   * to become visible.
   */
  async prepare(entry: SegmentEntry): Promise<void> {
    if (this.prepared.has(entry.id)) return;
    const path = segmentPath(this.root, entry.id);
    let footer: { meta: SegmentMeta; bloom: RegionRef; idIndex: IdIndexLayout | null };
    try {
      const file = await this.fs.openRead(path);
      try {
        if (file.sizeBytes !== entry.size_bytes)
          throw new Error(`size ${file.sizeBytes}, manifest says ${entry.size_bytes}`);
        footer = await readSegmentFooter(file);
      } finally {
        await file.close();
      }
    } catch (err) {
      throw corrupt(entry.id, `footer of ${path} cannot be read: ${(err as Error).message}`, err);
    }
    if (footer.meta.segmentId !== entry.id || footer.meta.rowCount !== entry.rows) {
      throw corrupt(
        entry.id,
        `${path} holds segment ${footer.meta.segmentId} with ${footer.meta.rowCount} rows`,
      );
    }
    const slices = slicesOf(entry, footer.meta, this.bucketCount);
    this.prepared.set(entry.id, {
      entry,
      meta: footer.meta,
      bloom: footer.bloom,
      idIndex: footer.idIndex,
      slices,
    });
    this.pending.add(entry.id);
  }

  /** Forgets a prepared segment whose commit will not happen (its flush or merge failed). */
  discard(segmentId: number): void {
    if (!this.pending.delete(segmentId)) return;
    this.prepared.delete(segmentId);
    this.forgetLookups(segmentId);
  }

  /**
   * Makes exactly `entries` visible (each must be prepared). Synchronous on purpose. `retain`:
   * ids of segments that pinned older versions may still read (their footers stay loaded).
   */
  setEntries(entries: readonly SegmentEntry[], retain: ReadonlySet<number> = new Set()): void {
    const files: SegmentFile[] = [];
    for (const e of entries) {
      const f = this.prepared.get(e.id);
      assert(f !== undefined, `segment ${e.id} made visible before prepare`);
      files.push(f);
    }
    const live = new Set([...entries.map((e) => e.id), ...retain]);
    for (const e of entries) this.pending.delete(e.id);
    // Prepared for a commit still to come (a flush or merge waiting for the manifest): kept.
    for (const id of [...this.prepared.keys()]) {
      if (live.has(id) || this.pending.has(id)) continue;
      this.prepared.delete(id);
      this.forgetLookups(id);
    }
    for (const id of [...this.readers.keys()]) if (!live.has(id)) this.evict(id);
    for (const id of [...this.points.keys()]) if (!live.has(id)) this.evictPoint(id);
    for (const id of [...this.parkedReaders.keys()]) if (!live.has(id)) this.parkedReaders.delete(id);
    for (const id of [...this.handles.keys()]) if (!live.has(id)) void this.closeHandle(id);
    const byBucket = new Map<number, PartitionSlice[]>();
    const all: PartitionSlice[] = [];
    for (const f of files) {
      for (const s of f.slices) {
        all.push(s);
        byBucket.set(s.bucket, [...(byBucket.get(s.bucket) ?? []), s]);
      }
    }
    this.files = files;
    this.allSlices = all;
    this.byBucket = byBucket;
  }

  /** The partition slices of `entries` (a pinned version's), each of which must be prepared. */
  slicesOf(entries: readonly SegmentEntry[]): PartitionSlice[] {
    // One array per version: queries then share it, and the caches keyed by it (the query
    // engine's bucket index) are built once per version, not once per query.
    let slices = this.slicesByVersion.get(entries);
    if (slices === undefined) {
      slices = entries.flatMap((e) => {
        const f = this.prepared.get(e.id);
        assert(f !== undefined, `segment ${e.id} is read by a version but not loaded`);
        return f.slices;
      });
      this.slicesByVersion.set(entries, slices);
    }
    return slices;
  }

  get segmentCount(): number {
    return this.files.length;
  }

  slices(): readonly PartitionSlice[] {
    return this.allSlices;
  }

  inBucket(bucket: number): readonly PartitionSlice[] {
    return this.byBucket.get(bucket) ?? [];
  }

  /** One probe of the database id filter: false means no live segment holds the id. */
  mayBeStored(h1: number, h2: number): boolean {
    return this.idFilter.mayContain(h1, h2);
  }

  /**
   * Visible segment files whose own id filter may hold `h` (no false negatives). Only asked
   * after the database filter said maybe; the filters come through a cache bounded in bytes.
   */
  async filesMayContain(h1: number, h2: number): Promise<SegmentEntry[]> {
    const out: SegmentEntry[] = [];
    this.dedupe.coldLookups++;
    for (const f of this.files) {
      this.dedupe.segmentFilterProbes++;
      // Cached filters answer without an await (a maybe probes every file).
      const filter = this.filterCache.get(f.entry.id) ?? (await this.segmentFilter(f));
      if (filter.mayContain(h1, h2)) out.push(f.entry);
    }
    return out;
  }

  private async segmentFilter(file: SegmentFile): Promise<BloomFilter> {
    const id = file.entry.id;
    const cached = this.filterCache.get(id);
    if (cached !== undefined) return cached;
    const handle = await this.openHandle(id, segmentPath(this.root, id));
    let failed = false;
    let filter: BloomFilter;
    try {
      filter = await readSegmentFilter(handle, file.bloom);
    } catch (err) {
      failed = true;
      throw corrupt(id, `id filter: ${(err as Error).message}`, err);
    } finally {
      await this.releaseHandle(id, failed);
    }
    this.dedupe.segmentFilterLoads++;
    if (this.prepared.get(id) !== file) return filter;
    // Concurrent lookups may have loaded it meanwhile: keep theirs, counted once.
    const raced = this.filterCache.get(id);
    if (raced !== undefined) return raced;
    // A full cache keeps the filters it holds and serves this one uncached. A maybe probes every
    // file in the same order: evicting the least recently used evicted, each time, the filter
    // the scan needed next, so once the filters outgrew the cache every probe read its filter
    // from disk (ingest stalled at 17M events). Kept, the cached ones answer and only the
    // rest are read.
    if (this.filterCacheBytes + filter.sizeBytes > this.filterCacheBytesMax) return filter;
    this.filterCache.set(id, filter);
    this.filterCacheBytes += filter.sizeBytes;
    return filter;
  }

  /**
   * Rows of a committed file whose event id hashes (hash128 h3) to `h3`, from its id index,
   * each with its payload hash words (h1, h2) when the file stores them (format 3; null
   * before): the chunk the lookup reads anyway holds them.
   */
  async idIndexHits(segmentId: number, h3: number): Promise<IdIndexHit[]> {
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const layout = file.idIndex;
    if (layout === null) {
      const index = await this.wholeIdIndex(file);
      const hits: IdIndexHit[] = [];
      for (let i = lowerBound(index.hashes, h3); i < index.hashes.length && index.hashes[i] === h3; i++)
        hits.push({ row: index.rows[i], payload: null });
      return hits;
    }
    // A stored index keeps the high bits of each hash (storedHashShift): candidates compare
    // on those. Equal values may run across chunks: start at the last chunk starting below.
    const rowCount = file.meta.rowCount;
    const withPayload = file.meta.formatVersion >= FORMAT_VERSION_3;
    const chunkEntries = idIndexChunkEntries(file.meta.formatVersion);
    const rowBits = rowBitsOf(rowCount);
    const key = h3 >>> storedHashShift(rowCount);
    const first = layout.firstHashes;
    const hits: IdIndexHit[] = [];
    for (let c = Math.max(0, lowerBound(first, key) - 1); c < first.length && first[c] <= key; c++) {
      const bytes = await this.idIndexChunk(file, layout, c);
      const count = Math.min(chunkEntries, rowCount - c * chunkEntries);
      const found = decodedOrCorrupt(segmentId, () => {
        const bits = idIndexChunkBits(bytes, count, withPayload);
        return searchIdIndexEntries(bits, first[c], count, rowBits, key).map((entry) => ({
          row: idIndexRowAt(bits, entry, rowBits),
          payload: withPayload ? idIndexPayloadAt(bytes, entry) : null,
        }));
      });
      for (const hit of found) {
        if (hit.row >= rowCount) throw corrupt(segmentId, `id index names row ${hit.row} of ${rowCount}`);
        hits.push(hit);
      }
    }
    return hits;
  }

  private cached(key: number): Uint8Array | IdIndex | undefined {
    const hit = this.indexCache.get(key);
    if (hit !== undefined) {
      this.indexCache.delete(key);
      this.indexCache.set(key, hit);
    }
    return hit;
  }

  private remember(file: SegmentFile, key: number, value: Uint8Array | IdIndex): void {
    if (this.prepared.get(file.entry.id) !== file) return;
    // Concurrent lookups may have read the same chunk: count it once.
    const raced = this.indexCache.get(key);
    if (raced !== undefined) this.indexCacheBytes -= cachedBytes(raced);
    this.indexCache.set(key, value);
    this.indexCacheBytes += cachedBytes(value);
    for (const [other, v] of this.indexCache) {
      if (this.indexCacheBytes <= ID_INDEX_CACHE_BYTES_MAX || other === key) break;
      this.indexCache.delete(other);
      this.indexCacheBytes -= cachedBytes(v);
    }
  }

  /** A stored id index chunk, verified once when read. */
  private async idIndexChunk(file: SegmentFile, layout: IdIndexLayout, chunk: number): Promise<Uint8Array> {
    const id = file.entry.id;
    const key = id * 65_536 + chunk;
    const hit = this.cached(key);
    if (hit instanceof Uint8Array) return hit;
    const region = layout.regions[chunk];
    const handle = await this.openHandle(id, segmentPath(this.root, id));
    let failed = false;
    let bytes: Uint8Array;
    try {
      bytes = verifyIdIndexChunk(await readSmall(handle, region.offset, region.length), region);
    } catch (err) {
      failed = true;
      throw corrupt(id, `id index: ${(err as Error).message}`, err);
    } finally {
      await this.releaseHandle(id, failed);
    }
    this.dedupe.idIndexChunkReads++;
    this.remember(file, key, bytes);
    return bytes;
  }

  /** A format 1 file's id index, built from its event ids (it stores none). */
  private async wholeIdIndex(file: SegmentFile): Promise<IdIndex> {
    const key = file.entry.id * 65_536 + WHOLE_INDEX_CHUNK;
    const hit = this.cached(key);
    if (hit !== undefined && !(hit instanceof Uint8Array)) return hit;
    const byRow = new Uint32Array(file.meta.rowCount);
    const h = new Uint32Array(4);
    let row = 0;
    await this.forEachEventId(file.entry.id, (id) => {
      hash128Into(id, h);
      byRow[row++] = h[2];
    });
    assert(row === file.meta.rowCount, `segment ${file.entry.id}: id index row count`);
    const index = buildIdIndex(byRow);
    this.dedupe.idIndexBuilds++;
    this.remember(file, key, index);
    return index;
  }

  /** hash128 words h1, h2 of every event id of a committed file (the id filter's keys). */
  async idHashes(segmentId: number): Promise<IdHashes> {
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const h1 = new Uint32Array(file.meta.rowCount);
    const h2 = new Uint32Array(file.meta.rowCount);
    const inline = file.meta.rowCount <= INLINE_ID_HASH_ROWS_MAX;
    let row = 0;
    await this.forEachEventIdSpan(segmentId, async (request) => {
      const part = await hashEventIds(request, { inline });
      h1.set(part.h1, row);
      h2.set(part.h2, row);
      row += part.h1.length;
    });
    assert(row === file.meta.rowCount, `segment ${segmentId}: id hashes row count`);
    return { h1, h2 };
  }

  /** Decodes a file's event ids block by block (its event_id chunks only), in file order. */
  private async forEachEventId(segmentId: number, visit: (id: string) => void): Promise<void> {
    await this.forEachEventIdSpan(segmentId, async ({ bytes, parts }) => {
      for (const part of parts) {
        const ids = decodeEventIdChunk(bytes, part);
        for (let i = 0; i < ids.ends.length; i++) visit(packedIdAt(ids, i));
      }
    });
  }

  /**
   * Reads a file's event_id chunks in spans of EVENT_ID_SPAN_BLOCKS (~250 KB read in one go),
   * each handed to `visit` undecoded with where each chunk sits in it, so it can be decoded off
   * the main thread. Not through the point cache: a whole column read once (a filter rebuild
   * reads every file's) would only evict what lookups use, and stay resident.
   */
  private async forEachEventIdSpan(
    segmentId: number,
    visit: (request: IdHashRequest) => Promise<void>,
  ): Promise<void> {
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const path = segmentPath(this.root, segmentId);
    const handle = await this.openHandle(segmentId, path);
    let failed = false;
    try {
      const image = await this.loadPointImage(segmentId, handle, file.entry);
      const blockCount = file.meta.blocks.length;
      const column = COLUMN_NAMES.indexOf('event_id') * blockCount;
      for (let b = 0; b < blockCount; b += EVENT_ID_SPAN_BLOCKS) {
        const last = Math.min(blockCount, b + EVENT_ID_SPAN_BLOCKS) - 1;
        const first = image.layout[column + b];
        const end = image.layout[column + last];
        const bytes = await handle.read(first.offset, end.offset + end.length - first.offset);
        const parts: IdChunkPart[] = [];
        for (let k = b; k <= last; k++) {
          const chunk = image.layout[column + k];
          parts.push({
            at: chunk.offset - first.offset,
            length: chunk.length,
            crc: chunk.crc,
            rows: file.meta.blocks[k].rowCount,
          });
        }
        await visit({ bytes, parts });
        // A large file takes ~100 ms or more: let ingest calls in between.
        await nextTurn();
      }
    } catch (err) {
      failed = true;
      if (err instanceof UsageDbError) throw err;
      throw corrupt(segmentId, `${path}: ${(err as Error).message}`, err);
    } finally {
      await this.releaseHandle(segmentId, failed);
    }
  }

  /** Drops what the dedupe caches hold of a file that left every version. */
  private forgetLookups(segmentId: number): void {
    this.parkedReaders.delete(segmentId);
    const f = this.filterCache.get(segmentId);
    if (f !== undefined) {
      this.filterCache.delete(segmentId);
      this.filterCacheBytes -= f.sizeBytes;
    }
    for (const [key, value] of this.indexCache) {
      if (Math.floor(key / 65_536) !== segmentId) continue;
      this.indexCache.delete(key);
      this.indexCacheBytes -= cachedBytes(value);
    }
  }

  /** Bytes the dedupe caches hold now (stats). */
  get dedupeCacheBytes(): { segmentFilters: number; idIndexChunks: number; pointChunks: number } {
    return {
      segmentFilters: this.filterCacheBytes,
      idIndexChunks: this.indexCacheBytes,
      pointChunks: this.pointBytes,
    };
  }

  /** The block holding a row of a file, and the row's index inside it. */
  blockOfRow(segmentId: number, row: number): { block: number; rowInBlock: number } {
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const blocks = file.meta.blocks;
    let lo = 0;
    let hi = blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (blocks[mid].firstRow <= row) lo = mid;
      else hi = mid - 1;
    }
    assert(
      row >= blocks[lo].firstRow && row < blocks[lo].firstRow + blocks[lo].rowCount,
      `segment ${segmentId} has no row ${row}`,
    );
    return { block: lo, rowInBlock: row - blocks[lo].firstRow };
  }

  /** The event id of one row of a file, decoding only that id (point lookups). */
  async readEventIdAt(segmentId: number, row: number): Promise<string> {
    const { block, rowInBlock } = this.blockOfRow(segmentId, row);
    const point = await this.pointColumns(segmentId, ['event_id'], [block]);
    return decodedOrCorrupt(segmentId, () => point.reader.readEventIdsAt(block, [rowInBlock])[0]);
  }

  /**
   * Decodes columns of a few blocks of a file, reading only their chunks (point lookups:
   * dedupe, corrections), not the whole file.
   */
  async readBlocks(
    segmentId: number,
    names: readonly ColumnName[],
    blocks: readonly number[],
  ): Promise<ColumnBatch> {
    const point = await this.pointColumns(segmentId, names, blocks);
    return this.decodeBlocks(segmentId, point.reader, names, blocks);
  }

  /**
   * One row of a file as a one-row batch (point lookups: dedupe's cold hits), reading only the
   * chunks of its block and copying out only its values.
   */
  async readRow(segmentId: number, names: readonly ColumnName[], row: number): Promise<ColumnBatch> {
    const { block, rowInBlock } = this.blockOfRow(segmentId, row);
    const point = await this.pointColumns(segmentId, names, [block]);
    return decodedOrCorrupt(segmentId, () => point.reader.readRowAt(names, block, rowInBlock));
  }

  /**
   * Reads the chunks of `names` × `blocks` of a file that its point image lacks. `image`: the
   * image a reader handed out earlier belongs to (it may have left the registry since; the
   * chunks must land in the image that reader decodes from).
   */
  private async pointColumns(
    segmentId: number,
    names: readonly ColumnName[],
    blocks: readonly number[],
    image?: PointImage,
  ): Promise<PointImage> {
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const path = segmentPath(this.root, segmentId);
    const handle = await this.openHandle(segmentId, path);
    let failed = false;
    // The image this call fills and returns: another call may drop it from the registry
    // meanwhile (eviction, a commit), never from under this caller.
    let point = image ?? this.points.get(segmentId);
    try {
      if (point === undefined) {
        point = await this.loadPointImage(segmentId, handle, file.entry);
        this.points.set(segmentId, point);
      } else {
        if (this.points.get(segmentId) !== point) {
          this.evictPoint(segmentId);
          this.pointBytes += point.loadedBytes;
        }
        this.points.delete(segmentId);
        this.points.set(segmentId, point);
      }
      const image = point;
      const layout = image.layout;
      const blockCount = file.meta.blocks.length;
      const wanted = new Set(names);
      // Column-major layout: one column's chunks for consecutive blocks are contiguous, so
      // read each run of missing blocks in one go (runs closer than SPAN_GAP_BLOCKS_MAX join).
      const reads: Promise<void>[] = [];
      const sorted = [...blocks].sort((a, b) => a - b);
      for (let c = 0; c < COLUMN_NAMES.length; c++) {
        if (!wanted.has(COLUMN_NAMES[c])) continue;
        const missing = sorted.filter((b) => !image.chunks.has(c * blockCount + b));
        for (let i = 0; i < missing.length;) {
          let j = i + 1;
          while (j < missing.length && missing[j] - missing[j - 1] <= SPAN_GAP_BLOCKS_MAX) j++;
          const from = c * blockCount + missing[i];
          const to = c * blockCount + missing[j - 1];
          i = j;
          const first = layout[from];
          const last = layout[to];
          // Small spans (a cold lookup's few chunks) are read at once, in this thread; larger
          // ones concurrently (columns lie far apart, column-major).
          reads.push(
            readSmall(handle, first.offset, last.offset + last.length - first.offset).then((bytes) => {
              // Every chunk of the span is kept: they share its buffer.
              for (let k = from; k <= to; k++) {
                const start = layout[k].offset - first.offset;
                image.chunks.set(k, bytes.subarray(start, start + layout[k].length));
              }
              image.loadedBytes += bytes.length;
              this.pointBytes += bytes.length;
            }),
          );
        }
      }
      const settled = await Promise.allSettled(reads);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) {
        // Forget what this call meant to load: a later call must read it again.
        this.evictPoint(segmentId);
        throw (failed as PromiseRejectedResult).reason;
      }
    } catch (err) {
      failed = true;
      throw corrupt(segmentId, `${path}: ${(err as Error).message}`, err);
    } finally {
      await this.releaseHandle(segmentId, failed);
    }
    assert(point !== undefined, `segment ${segmentId}: point image loaded`);
    for (const id of this.points.keys()) {
      if (this.pointBytes <= POINT_CACHE_BYTES_MAX || id === segmentId) break;
      this.evictPoint(id);
    }
    return point;
  }

  private async loadPointImage(
    segmentId: number,
    handle: ReadFile,
    entry: SegmentEntry,
  ): Promise<PointImage> {
    if (handle.sizeBytes !== entry.size_bytes)
      throw new Error(`size ${handle.sizeBytes}, manifest says ${entry.size_bytes}`);
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const chunks = new Map<number, Uint8Array>();
    const fetchChunk = (i: number): Uint8Array => {
      const bytes = chunks.get(i);
      assert(bytes !== undefined, `segment ${segmentId}: chunk ${i} decoded before it was read`);
      return bytes;
    };
    const parked = this.parkedReaders.get(segmentId);
    if (parked !== undefined)
      return { chunks, reader: parked.withChunks(fetchChunk), layout: parked.chunkLayout(), loadedBytes: 0 };
    const head = await readSmall(handle, 0, Math.min(64, entry.size_bytes));
    const tail = await readSegmentTail(handle);
    const reader = SegmentReader.sparse(entry.size_bytes, head, tail, fetchChunk);
    assert(reader.meta.segmentId === segmentId, `segment ${segmentId}: file holds another segment`);
    return { chunks, reader, layout: reader.chunkLayout(), loadedBytes: 0 };
  }

  /**
   * An open read handle of a segment file, kept for later point reads: opening and closing
   * the file cost ~60 µs per dedupe lookup. At most OPEN_HANDLES_MAX idle handles stay open.
   */
  private async openHandle(segmentId: number, path: string): Promise<ReadFile> {
    let h = this.handles.get(segmentId);
    if (h === undefined) {
      h = { file: await this.fs.openRead(path), users: 0 };
      const raced = this.handles.get(segmentId);
      if (raced !== undefined) {
        await h.file.close();
        h = raced;
      } else this.handles.set(segmentId, h);
    } else {
      this.handles.delete(segmentId);
      this.handles.set(segmentId, h);
    }
    h.users++;
    return h.file;
  }

  /** Ends one use of a handle; a failed read closes it (the next use reopens the file). */
  private async releaseHandle(segmentId: number, failed: boolean): Promise<void> {
    const h = this.handles.get(segmentId);
    if (h === undefined) return;
    h.users--;
    if (failed) await this.closeHandle(segmentId);
    for (const [id, other] of this.handles) {
      if (this.handles.size <= OPEN_HANDLES_MAX) break;
      if (other.users === 0) await this.closeHandle(id);
    }
  }

  private async closeHandle(segmentId: number): Promise<void> {
    const h = this.handles.get(segmentId);
    if (h === undefined || h.users > 0) return;
    this.handles.delete(segmentId);
    await h.file.close().catch(() => undefined);
  }

  /** Closes every cached file handle (the database is closing). */
  async close(): Promise<void> {
    for (const id of [...this.handles.keys()]) await this.closeHandle(id);
  }

  private evictPoint(id: number): void {
    const p = this.points.get(id);
    if (!p) return;
    this.pointBytes -= p.loadedBytes;
    this.points.delete(id);
    if (this.prepared.has(id)) this.parkedReaders.set(id, p.reader);
  }

  private evict(id: number): void {
    const r = this.readers.get(id);
    if (!r) return;
    this.cacheBytes -= this.prepared.get(id)?.entry.size_bytes ?? 0;
    this.readers.delete(id);
  }

  /** The verified reader of a whole segment file (cached). */
  async fileReader(segmentId: number): Promise<SegmentReader> {
    const cached = this.readers.get(segmentId);
    if (cached) {
      this.readers.delete(segmentId);
      this.readers.set(segmentId, cached);
      return cached;
    }
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const path = segmentPath(this.root, segmentId);
    let reader: SegmentReader;
    try {
      const bytes = await this.fs.readFile(path);
      reader = SegmentReader.fromBytes(bytes, {
        sizeBytes: file.entry.size_bytes,
        checksum: file.entry.crc32c,
      });
    } catch (err) {
      throw corrupt(segmentId, `${path} failed verification: ${(err as Error).message}`, err);
    }
    this.readers.set(segmentId, reader);
    this.cacheBytes += file.entry.size_bytes;
    for (const id of this.readers.keys()) {
      if (this.cacheBytes <= this.cacheBytesMax || this.readers.size <= 1) break;
      this.evict(id);
    }
    return reader;
  }

  /**
   * The verified reader of a whole segment file for a one-pass scan (export): the cached one
   * if present, else read and verified like fileReader but not cached, so a scan of every
   * file neither grows nor flushes the cache.
   */
  async scanFileReader(segmentId: number): Promise<SegmentReader> {
    const cached = this.readers.get(segmentId);
    if (cached) return cached;
    const file = this.prepared.get(segmentId);
    assert(file !== undefined, `segment ${segmentId} is not committed`);
    const path = segmentPath(this.root, segmentId);
    try {
      const bytes = await this.fs.readFile(path);
      return SegmentReader.fromBytes(bytes, {
        sizeBytes: file.entry.size_bytes,
        checksum: file.entry.crc32c,
      });
    } catch (err) {
      throw corrupt(segmentId, `${path} failed verification: ${(err as Error).message}`, err);
    }
  }

  /**
   * A reader of one partition slice (block indexes relative to the slice). Sparse: it holds the
   * file's footer and only the chunks `prefetch` read, each checked against its CRC when
   * decoded; a query never reads or checksums a whole file.
   */
  async reader(slice: PartitionSlice): Promise<SliceReader> {
    const point = await this.pointColumns(slice.segment_id, [], []);
    const file = point.reader;
    this.imageOfReader.set(file, point);
    // Views are kept per file reader: a query's first touch of a slice then costs no copying.
    let views = this.sliceViews.get(file);
    if (views === undefined) {
      views = new Map();
      this.sliceViews.set(file, views);
    }
    let view = views.get(slice.id);
    if (view === undefined) {
      view = this.sliceView(file, slice);
      views.set(slice.id, view);
    }
    return view;
  }

  private sliceView(file: SegmentReader, slice: PartitionSlice): SliceReader {
    const meta = file.meta;
    const blocks = meta.blocks.slice(slice.first_block, slice.first_block + slice.block_count);
    const base = blocks[0].firstRow;
    const relative = blocks.map((b) => ({ ...b, firstRow: b.firstRow - base }));
    // The dictionary is sorted: the slice's accounts are one contiguous run of it.
    const accountIds = meta.accountIds.slice(
      lowerBound(meta.accountIds, slice.min_account),
      upperBound(meta.accountIds, slice.max_account),
    );
    const view: SliceReader = {
      meta: {
        rowCount: slice.rows,
        accountIds,
        productIds: meta.productIds,
        meterIds: meta.meterIds,
        modelIds: meta.modelIds,
        blocks: relative,
      },
      selectBlocks: (filter) => relative.flatMap((b, i) => (overlaps(b, filter) ? [i] : [])),
    };
    this.fileOfSlice.set(view, file);
    return view;
  }

  /**
   * Reads the chunks that the requests' readers lack: `names` × `blocks` (relative) of each
   * slice, the slices of one file (and one image) together, so nearby blocks of different
   * slices share a read.
   */
  async prefetch(
    requests: readonly {
      entry: PartitionSlice;
      reader: SliceReader;
      names: readonly ColumnName[];
      blocks: readonly number[];
    }[],
  ): Promise<void> {
    const byImage = new Map<PointImage, { segmentId: number; names: Set<ColumnName>; blocks: number[] }>();
    for (const { entry: slice, reader: view, names, blocks } of requests) {
      const reader = this.fileOfSlice.get(view);
      assert(reader !== undefined, `segment ${slice.segment_id} read with a reader it did not hand out`);
      const image = this.imageOfReader.get(reader);
      assert(image !== undefined, `segment ${slice.segment_id}: slice reader without its image`);
      let group = byImage.get(image);
      if (group === undefined)
        byImage.set(image, (group = { segmentId: slice.segment_id, names: new Set(), blocks: [] }));
      for (const n of names) group.names.add(n);
      for (const b of blocks) group.blocks.push(slice.first_block + b);
    }
    for (const [image, group] of byImage) {
      await this.pointColumns(group.segmentId, [...group.names], group.blocks, image);
    }
  }

  /** Decodes columns of a slice's blocks (relative indexes; all when omitted). */
  decode(
    slice: PartitionSlice,
    view: SliceReader,
    names: readonly ColumnName[],
    blocks?: readonly number[],
  ): ColumnBatch {
    const reader = this.fileOfSlice.get(view);
    assert(reader !== undefined, `segment ${slice.segment_id} decoded with a reader it did not hand out`);
    const absolute = (blocks ?? Array.from({ length: slice.block_count }, (_, i) => i)).map(
      (b) => slice.first_block + b,
    );
    return this.decodeBlocks(slice.segment_id, reader, names, absolute);
  }

  /** The event ids of some rows of one block of a slice (relative block index). */
  decodeEventIds(slice: PartitionSlice, view: SliceReader, block: number, rows: ArrayLike<number>): string[] {
    const reader = this.fileOfSlice.get(view);
    assert(reader !== undefined, `segment ${slice.segment_id} decoded with a reader it did not hand out`);
    assert(block >= 0 && block < slice.block_count, `slice has no block ${block}`);
    try {
      return reader.readEventIdsAt(slice.first_block + block, rows);
    } catch (err) {
      if (err instanceof RangeError) throw err;
      throw corrupt(slice.segment_id, (err as Error).message, err);
    }
  }

  /** Decodes columns of absolute block indexes of a file, as a corruption error on a bad chunk. */
  decodeBlocks(
    segmentId: number,
    reader: SegmentReader,
    names: readonly ColumnName[],
    blocks: readonly number[],
  ): ColumnBatch {
    return decodedOrCorrupt(segmentId, () => reader.readColumns(names, blocks));
  }

  /** decodeBlocks for the event ids alone, as UTF-8 bytes (SegmentReader.readEventIdBytes). */
  decodeEventIdBytes(segmentId: number, reader: SegmentReader, blocks: readonly number[]): PackedIds {
    return decodedOrCorrupt(segmentId, () => reader.readEventIdBytes(blocks));
  }
}
