/**
 * A bounded LRU cache of decoded column chunks, keyed by (segment store, segment, column,
 * block), so repeated queries do not verify and decompress the same chunks again; it also
 * keeps the opened reader of each segment it serves, so a warm scan never waits.
 *
 * Invariants:
 * - the charged bytes of the entries held never exceed `maxBytes` after an insert returns
 *   (a chunk larger than the whole budget is returned but not kept);
 * - an entry is only served for the same store object, segment id and file CRC32C it was
 *   decoded from; segments are immutable, so a hit is always the bytes on disk;
 * - cached chunks are shared by every query: callers treat them as read-only.
 */
import { COLUMN_NAMES, type ColumnBatch, type ColumnName, type EventColumns } from '../model/columns.ts';
import { type BlockSummary, shapeServes, type SummaryShape } from './summary.ts';
import type { SegmentEntryView, SegmentReaderView, SegmentSource } from './types.ts';

export const DEFAULT_QUERY_CACHE_BYTES = 128 * 1024 * 1024;

export type ColumnChunk = EventColumns[ColumnName];

const COLUMN_INDEX = new Map<ColumnName, number>(COLUMN_NAMES.map((name, i) => [name, i]));
/** The slot of a segment's opened reader (kept so warm scans need no await). */
const READER_SLOT = -1;

interface Entry {
  owner: SegmentChunks;
  /** Column index, or READER_SLOT. */
  column: number;
  block: number;
  value: ColumnChunk | SegmentReaderView;
  bytes: number;
  /** LRU list: `prev` is older, `next` is newer. */
  prev: Entry | null;
  next: Entry | null;
}

/** The cached state of one segment: its opened reader and decoded chunks. */
export interface SegmentChunks {
  readonly store: object;
  readonly segmentId: number;
  readonly crc: number;
  /** Per column index, per block. */
  readonly byColumn: (Entry | undefined)[][];
  reader: Entry | null;
  /** Whole decoded blocks of audit pages, per block. */
  readonly wide: (WideEntry | undefined)[];
  /** Block summaries (summary.ts): per shape key, per block. */
  readonly summaries: Map<string, { shape: SummaryShape; blocks: (SummaryEntry | undefined)[] }>;
  entries: number;
}

interface SummaryEntry {
  owner: SegmentChunks;
  shape: string;
  block: number;
  value: BlockSummary;
}

export interface CacheCounters {
  cacheHits: number;
  cacheMisses: number;
}

/** Memory a decoded chunk holds (strings at 2 bytes a code unit plus object overhead). */
export function chunkBytes(value: ColumnChunk): number {
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (Array.isArray(value)) {
    let bytes = value.length * 8;
    // Indexed: a frozen (shared all-null) column would iterate through the slow path.
    for (let i = 0; i < value.length; i++) {
      const s = value[i];
      if (s !== null) bytes += 24 + s.length * 2;
    }
    return bytes;
  }
  if ('codes' in value) return value.codes.byteLength + value.dict.length * 8;
  return value.values.byteLength + (value.big === null ? 0 : value.big.size * 64);
}

/** Share of the cache's bytes kept for block summaries (their own LRU, see keepSummary). */
export const SUMMARY_SHARE = 0.4;
/** Share kept for the whole blocks an audit page returns rows of (see wideBlock). */
export const WIDE_SHARE = 1 / 16;

interface WideEntry {
  owner: SegmentChunks;
  block: number;
  value: ColumnBatch;
  bytes: number;
}

export class ChunkCache {
  readonly maxBytes: number;
  /** Bytes kept for block summaries; chunks and readers get the rest. */
  readonly summaryMaxBytes: number;
  private readonly chunkMaxBytes: number;
  private bytes = 0;
  private count = 0;
  private summaryBytes = 0;
  /** Block summaries, least recently used first (a Map keeps insertion order). */
  private readonly summaryLru = new Map<SummaryEntry, true>();
  private readonly wideMaxBytes: number;
  private wideBytes = 0;
  private readonly wideLru = new Map<WideEntry, true>();
  private oldest: Entry | null = null;
  private newest: Entry | null = null;
  private readonly stores = new WeakMap<object, Map<number, SegmentChunks>>();

  /** `summaryShare`: the part of `maxBytes` kept for block summaries. */
  constructor(maxBytes = DEFAULT_QUERY_CACHE_BYTES, summaryShare = SUMMARY_SHARE) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new RangeError(`cacheBytes must be a non-negative integer, got ${maxBytes}`);
    this.maxBytes = maxBytes;
    this.summaryMaxBytes = Math.floor(maxBytes * summaryShare);
    this.wideMaxBytes = summaryShare === 0 ? 0 : Math.floor(maxBytes * WIDE_SHARE);
    this.chunkMaxBytes = maxBytes - this.summaryMaxBytes - this.wideMaxBytes;
  }

  /**
   * Every column but the ids of one block, as an audit page reads it to return rows: kept
   * apart from the chunks (whose LRU would drop it at once, or keep it at the expense of the
   * columns aggregates reuse), so the next page of the walk, usually in the same block, finds it.
   */
  wideBlock(
    seg: SegmentChunks,
    source: SegmentSource,
    entry: SegmentEntryView,
    reader: SegmentReaderView,
    block: number,
    rowCount: number,
    names: readonly ColumnName[],
    counters: CacheCounters,
  ): ColumnBatch {
    const known = seg.wide[block];
    if (known !== undefined) {
      counters.cacheHits++;
      this.wideLru.delete(known);
      this.wideLru.set(known, true);
      return known.value;
    }
    const value = this.block(seg, source, entry, reader, block, rowCount, names, counters, true);
    let bytes = 256;
    for (const name of names) {
      const col = value[name];
      if (col !== undefined) bytes += chunkBytes(col) + 96;
    }
    if (bytes > this.wideMaxBytes) return value;
    while (this.wideBytes + bytes > this.wideMaxBytes) {
      const oldest = this.wideLru.keys().next();
      if (oldest.done === true) break;
      this.removeWide(oldest.value);
    }
    const e: WideEntry = { owner: seg, block, value, bytes };
    seg.wide[block] = e;
    this.wideLru.set(e, true);
    this.wideBytes += bytes;
    seg.entries++;
    if (seg.entries === 1) this.stores.get(seg.store)?.set(seg.segmentId, seg);
    return value;
  }

  private removeWide(e: WideEntry): void {
    this.wideLru.delete(e);
    this.wideBytes -= e.bytes;
    const seg = e.owner;
    seg.wide[e.block] = undefined;
    seg.entries--;
    if (seg.entries === 0) this.stores.get(seg.store)?.delete(seg.segmentId);
  }

  get sizeBytes(): number {
    return this.bytes + this.summaryBytes + this.wideBytes;
  }

  get entryCount(): number {
    return this.count + this.summaryLru.size + this.wideLru.size;
  }

  /** A cached summary of a block that serves `shape` (its own, or a finer one), or undefined. */
  summary(seg: SegmentChunks, block: number, shape: SummaryShape): BlockSummary | undefined {
    let e = seg.summaries.get(shape.key)?.blocks[block];
    if (e === undefined && seg.summaries.size > 0)
      for (const other of seg.summaries.values()) {
        e = other.blocks[block];
        if (e !== undefined && shapeServes(other.shape, shape)) break;
        e = undefined;
      }
    if (e === undefined) return undefined;
    this.summaryLru.delete(e);
    this.summaryLru.set(e, true);
    return e.value;
  }

  /**
   * Keeps a block summary in the summaries' own share of the budget: the chunks a scan
   * decodes to build summaries then cannot push the summaries out.
   */
  keepSummary(seg: SegmentChunks, block: number, shape: SummaryShape, value: BlockSummary): void {
    let byBlock = seg.summaries.get(shape.key)?.blocks;
    if (value.bytes > this.summaryMaxBytes || byBlock?.[block] !== undefined) return;
    while (this.summaryBytes + value.bytes > this.summaryMaxBytes) {
      const oldest = this.summaryLru.keys().next();
      if (oldest.done === true) break;
      this.removeSummary(oldest.value);
    }
    const e: SummaryEntry = { owner: seg, shape: shape.key, block, value };
    if (byBlock === undefined) seg.summaries.set(shape.key, { shape, blocks: (byBlock = []) });
    byBlock[block] = e;
    this.summaryLru.set(e, true);
    this.summaryBytes += value.bytes;
    seg.entries++;
    if (seg.entries === 1) this.stores.get(seg.store)?.set(seg.segmentId, seg);
  }

  private removeSummary(e: SummaryEntry): void {
    this.summaryLru.delete(e);
    this.summaryBytes -= e.value.bytes;
    const seg = e.owner;
    const byShape = seg.summaries.get(e.shape);
    if (byShape !== undefined) byShape.blocks[e.block] = undefined;
    seg.entries--;
    if (seg.entries === 0) this.stores.get(seg.store)?.delete(seg.segmentId);
  }

  /** The cache record of one segment, created on first use. */
  segment(store: object, entry: SegmentEntryView): SegmentChunks {
    let bySegment = this.stores.get(store);
    if (bySegment === undefined) {
      bySegment = new Map();
      this.stores.set(store, bySegment);
    }
    let seg = bySegment.get(entry.id);
    if (seg !== undefined && seg.crc !== entry.crc32c) {
      this.dropSegment(seg);
      seg = undefined;
    }
    if (seg === undefined) {
      seg = {
        store,
        segmentId: entry.id,
        crc: entry.crc32c,
        byColumn: COLUMN_NAMES.map(() => []),
        reader: null,
        summaries: new Map(),
        wide: [],
        entries: 0,
      };
      bySegment.set(entry.id, seg);
    }
    return seg;
  }

  /** Whether every one of `names` of `block` is cached (then a decode needs no chunk read). */
  holds(seg: SegmentChunks, names: readonly ColumnName[], block: number): boolean {
    for (let i = 0; i < names.length; i++) {
      if (seg.byColumn[COLUMN_INDEX.get(names[i]) as number][block] === undefined) return false;
    }
    return true;
  }

  /** The segment's reader if this cache still holds it. */
  reader(seg: SegmentChunks): SegmentReaderView | null {
    const e = seg.reader;
    if (e === null) return null;
    this.touch(e);
    return e.value as SegmentReaderView;
  }

  /** Keeps an opened reader, charged with the bytes it holds. */
  keepReader(seg: SegmentChunks, reader: SegmentReaderView, heldBytes: number): void {
    if (seg.reader === null) this.insert(seg, READER_SLOT, 0, reader, heldBytes + 256);
  }

  /**
   * Columns `names` of one block: cached chunks, and the missing ones decoded in one call
   * (exactly that block) and cached.
   */
  block(
    seg: SegmentChunks,
    source: SegmentSource,
    entry: SegmentEntryView,
    reader: SegmentReaderView,
    block: number,
    rowCount: number,
    names: readonly ColumnName[],
    counters: CacheCounters,
    coldInsert = false,
  ): ColumnBatch {
    const batch: ColumnBatch = { rowCount };
    let missing: ColumnName[] | null = null;
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const e = seg.byColumn[COLUMN_INDEX.get(name) as number][block];
      if (e === undefined) {
        if (missing === null) missing = [];
        missing.push(name);
        continue;
      }
      counters.cacheHits++;
      this.touch(e);
      setColumn(batch, name, e.value as ColumnChunk);
    }
    if (missing !== null) {
      const decoded = source.decode(entry, reader, missing, [block]);
      for (const name of missing) {
        const value = decoded[name];
        if (value === undefined) throw new Error(`decode returned no ${name} column`);
        counters.cacheMisses++;
        setColumn(batch, name, value);
        this.insert(seg, COLUMN_INDEX.get(name) as number, block, value, chunkBytes(value) + 96, coldInsert);
      }
    }
    return batch;
  }

  /**
   * Adds an entry at the recent end, or with `cold` at the old end: one-off wide reads (the
   * audit listing's whole events) then go first and do not push out the columns that
   * aggregate queries reuse.
   */
  private insert(
    seg: SegmentChunks,
    column: number,
    block: number,
    value: ColumnChunk | SegmentReaderView,
    bytes: number,
    cold = false,
  ): void {
    if (bytes > this.chunkMaxBytes) return;
    // Two queries may decode the same chunk concurrently; keep one.
    const existing = column === READER_SLOT ? seg.reader : seg.byColumn[column][block];
    if (existing !== null && existing !== undefined) return;
    // Room first, so a cold entry is not its own first victim.
    while (this.bytes + bytes > this.chunkMaxBytes && this.oldest !== null) this.remove(this.oldest);
    const e: Entry = { owner: seg, column, block, value, bytes, prev: null, next: null };
    if (cold) {
      e.next = this.oldest;
      if (this.oldest !== null) this.oldest.prev = e;
      this.oldest = e;
      this.newest ??= e;
    } else {
      e.prev = this.newest;
      if (this.newest !== null) this.newest.next = e;
      this.newest = e;
      this.oldest ??= e;
    }
    if (column === READER_SLOT) seg.reader = e;
    else seg.byColumn[column][block] = e;
    seg.entries++;
    if (seg.entries === 1) this.stores.get(seg.store)?.set(seg.segmentId, seg);
    this.bytes += bytes;
    this.count++;
  }

  private touch(e: Entry): void {
    if (this.newest === e) return;
    this.unlink(e);
    e.prev = this.newest;
    e.next = null;
    if (this.newest !== null) this.newest.next = e;
    this.newest = e;
    this.oldest ??= e;
  }

  private unlink(e: Entry): void {
    if (e.prev !== null) e.prev.next = e.next;
    else this.oldest = e.next;
    if (e.next !== null) e.next.prev = e.prev;
    else this.newest = e.prev;
    e.prev = null;
    e.next = null;
  }

  private remove(e: Entry): void {
    this.unlink(e);
    this.bytes -= e.bytes;
    this.count--;
    const seg = e.owner;
    if (e.column === READER_SLOT) seg.reader = null;
    else seg.byColumn[e.column][e.block] = undefined;
    seg.entries--;
    // An empty segment record goes too, so the maps do not grow with every segment ever read.
    if (seg.entries === 0) this.stores.get(seg.store)?.delete(seg.segmentId);
  }

  private dropSegment(seg: SegmentChunks): void {
    if (seg.reader !== null) this.remove(seg.reader);
    for (const blocks of seg.byColumn) for (const e of blocks) if (e !== undefined) this.remove(e);
    for (const { blocks } of [...seg.summaries.values()])
      for (const e of blocks) if (e !== undefined) this.removeSummary(e);
    for (const e of [...seg.wide]) if (e !== undefined) this.removeWide(e);
    this.stores.get(seg.store)?.delete(seg.segmentId);
  }

  /** Drops everything (tests, or after a memory-pressure signal). */
  clear(): void {
    while (this.oldest !== null) this.remove(this.oldest);
    for (const e of [...this.summaryLru.keys()]) this.removeSummary(e);
    for (const e of [...this.wideLru.keys()]) this.removeWide(e);
  }
}

/** Assigns a decoded chunk to its column of a batch (the names and value types correspond). */
function setColumn(batch: ColumnBatch, name: ColumnName, value: ColumnChunk): void {
  (batch as Record<ColumnName, ColumnChunk>)[name] = value;
}
