/**
 * The committed raw segments: their manifest entries indexed for pruning, and a bounded cache
 * of opened readers (verified bytes, decoded columns, id -> row maps).
 *
 * Invariants:
 * - a reader is only built from bytes whose size and CRC32C equal the manifest entry
 *   (fail closed: a corrupt or swapped file raises USAGEDB_ERR_SEGMENT_CORRUPT, never data);
 * - cached memory stays under `cacheBytesMax` (least recently used entries are dropped).
 */
import { UsageDbError } from '../errors.ts';
import { type ColumnName, COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import type { BloomFilter } from './encoding/bloom-filter.ts';
import type { FileSystem } from './fs/file-system.ts';
import { rawSegmentPath } from './layout.ts';
import type { SegmentEntry } from './manifest.ts';
import { partitionKey } from './partition.ts';
import { SegmentReader, readSegmentFooter } from './segment/segment-reader.ts';

interface CachedSegment {
  reader: SegmentReader;
  costBytes: number;
  idToRow: Map<string, number> | null;
  all: EventColumns | null;
}

export const DEFAULT_SEGMENT_CACHE_BYTES = 256 * 1024 * 1024;

export class SegmentStore {
  private readonly fs: FileSystem;
  private readonly root: string;
  private readonly cacheBytesMax: number;
  private readonly cache = new Map<number, CachedSegment>();
  private cacheBytes = 0;
  private readonly filters = new Map<number, BloomFilter>();
  private entriesById = new Map<number, SegmentEntry>();
  private entriesByPartition = new Map<string, SegmentEntry[]>();
  private entriesByBucket = new Map<number, SegmentEntry[]>();

  constructor(fs: FileSystem, root: string, cacheBytesMax = DEFAULT_SEGMENT_CACHE_BYTES) {
    this.fs = fs;
    this.root = root;
    this.cacheBytesMax = cacheBytesMax;
  }

  /** Replaces the set of committed segments (after a manifest commit or at open). */
  setEntries(entries: readonly SegmentEntry[]): void {
    const byId = new Map<number, SegmentEntry>();
    const byPartition = new Map<string, SegmentEntry[]>();
    const byBucket = new Map<number, SegmentEntry[]>();
    for (const e of entries) {
      byId.set(e.id, e);
      const pk = partitionKey(e.day, e.bucket);
      byPartition.set(pk, [...(byPartition.get(pk) ?? []), e]);
      const inBucket = byBucket.get(e.bucket);
      if (inBucket) inBucket.push(e);
      else byBucket.set(e.bucket, [e]);
    }
    for (const id of this.cache.keys()) if (!byId.has(id)) this.evict(id);
    for (const id of this.filters.keys()) if (!byId.has(id)) this.filters.delete(id);
    this.entriesById = byId;
    this.entriesByPartition = byPartition;
    this.entriesByBucket = byBucket;
  }

  entries(): IterableIterator<SegmentEntry> {
    return this.entriesById.values();
  }

  get segmentCount(): number {
    return this.entriesById.size;
  }

  inPartition(day: string, bucket: number): readonly SegmentEntry[] {
    return this.entriesByPartition.get(partitionKey(day, bucket)) ?? [];
  }

  inBucket(bucket: number): readonly SegmentEntry[] {
    return this.entriesByBucket.get(bucket) ?? [];
  }

  path(entry: SegmentEntry): string {
    return rawSegmentPath(this.root, entry.day, entry.bucket, entry.id);
  }

  private evict(id: number): void {
    const cached = this.cache.get(id);
    if (!cached) return;
    this.cacheBytes -= cached.costBytes;
    this.cache.delete(id);
  }

  private touch(id: number, cached: CachedSegment): void {
    this.cache.delete(id);
    this.cache.set(id, cached);
  }

  private charge(cached: CachedSegment, bytes: number): void {
    cached.costBytes += bytes;
    this.cacheBytes += bytes;
    for (const [id] of this.cache) {
      if (this.cacheBytes <= this.cacheBytesMax || this.cache.size <= 1) break;
      this.evict(id);
    }
  }

  private async load(entry: SegmentEntry): Promise<CachedSegment> {
    const hit = this.cache.get(entry.id);
    if (hit) {
      this.touch(entry.id, hit);
      return hit;
    }
    const path = this.path(entry);
    let bytes: Uint8Array;
    try {
      bytes = await this.fs.readFile(path);
    } catch (err) {
      throw new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', `segment ${entry.id} (${path}) cannot be read`, { cause: err });
    }
    let reader: SegmentReader;
    try {
      reader = SegmentReader.fromBytes(bytes, { sizeBytes: entry.size_bytes, checksum: entry.crc32c });
    } catch (err) {
      throw new UsageDbError(
        'USAGEDB_ERR_SEGMENT_CORRUPT',
        `segment ${entry.id} (${path}) failed verification: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const cached: CachedSegment = { reader, costBytes: 0, idToRow: null, all: null };
    this.cache.set(entry.id, cached);
    this.charge(cached, bytes.length);
    return cached;
  }

  async reader(entry: SegmentEntry): Promise<SegmentReader> {
    return (await this.load(entry)).reader;
  }

  /** Decodes columns, turning a chunk checksum failure into a clear corruption error. */
  decode(entry: SegmentEntry, reader: SegmentReader, names: readonly ColumnName[], blocks?: readonly number[]) {
    try {
      return reader.readColumns(names, blocks);
    } catch (err) {
      throw new UsageDbError(
        'USAGEDB_ERR_SEGMENT_CORRUPT',
        `segment ${entry.id} (${this.path(entry)}): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** All columns of a segment, decoded once and cached. */
  async allColumns(entry: SegmentEntry): Promise<EventColumns> {
    const cached = await this.load(entry);
    if (cached.all === null) {
      cached.all = this.decode(entry, cached.reader, COLUMN_NAMES) as EventColumns;
      this.charge(cached, cached.all.rowCount * 160);
    }
    return cached.all;
  }

  /** The row of `eventId` in the segment, or undefined. */
  async findRow(entry: SegmentEntry, eventId: string): Promise<number | undefined> {
    const cached = await this.load(entry);
    if (cached.idToRow === null) {
      const ids = this.decode(entry, cached.reader, ['event_id']).event_id ?? [];
      const map = new Map<string, number>();
      for (let row = 0; row < ids.length; row++) map.set(ids[row], row);
      cached.idToRow = map;
      this.charge(cached, ids.length * 64);
    }
    return cached.idToRow.get(eventId);
  }

  /** The segment's event-id filter, from the cached reader or by reading only its footer. */
  async filter(entry: SegmentEntry): Promise<BloomFilter> {
    const known = this.filters.get(entry.id);
    if (known) return known;
    const file = await this.fs.openRead(this.path(entry));
    try {
      const { filter } = await readSegmentFooter(file);
      this.filters.set(entry.id, filter);
      return filter;
    } catch (err) {
      throw new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', `segment ${entry.id} footer: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      await file.close();
    }
  }
}
