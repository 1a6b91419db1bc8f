/** The chunk cache: byte bound, LRU order, cold inserts evicted first, readers kept. */
import { describe, expect, it } from 'vitest';
import type { ColumnBatch, ColumnName } from '../../src/model/columns.ts';
import { ChunkCache } from '../../src/query/chunk-cache.ts';
import type { SegmentEntryView, SegmentReaderView, SegmentSource } from '../../src/query/types.ts';

const ROWS = 1000; // a timestamp chunk of 1000 rows charges 8,000 + 96 bytes

function entry(id: number): SegmentEntryView {
  return { id, rows: ROWS, min_ts: 0, max_ts: 1, size_bytes: 500, crc32c: id * 7 };
}

const reader: SegmentReaderView = {
  meta: { rowCount: ROWS, accountIds: [], productIds: [], meterIds: [], modelIds: [], blocks: [] },
  selectBlocks: () => [],
};

function source(log: string[]): SegmentSource {
  return {
    reader: async () => reader,
    decode: (
      e: SegmentEntryView,
      _r: SegmentReaderView,
      names: readonly ColumnName[],
      blocks?: readonly number[],
    ): ColumnBatch => {
      log.push(`${e.id}:${names.join(',')}:${blocks?.join(',')}`);
      return { rowCount: ROWS, timestamp_ms: new Float64Array(ROWS).fill(e.id) };
    },
    decodeEventIds: () => [],
  };
}

/** A cache that fits three one-column blocks, with a read of block `id` and its source's log. */
function threeBlockCache() {
  // No share for block summaries: all of the budget holds chunks.
  const cache = new ChunkCache(3 * 8096 + 100, 0);
  const log: string[] = [];
  const src = source(log);
  const counters = { cacheHits: 0, cacheMisses: 0 };
  const read = (id: number, cold = false) =>
    cache.block(
      cache.segment(src, entry(id)),
      src,
      entry(id),
      reader,
      0,
      ROWS,
      ['timestamp_ms'],
      counters,
      cold,
    );
  return { cache, log, counters, read };
}

describe('ChunkCache', () => {
  it('serves repeats from memory, evicts least recently used past the byte limit', () => {
    const { cache, log, counters, read } = threeBlockCache();
    read(1);
    read(2);
    read(3);
    expect(counters).toEqual({ cacheHits: 0, cacheMisses: 3 });
    expect((read(1).timestamp_ms as Float64Array)[0]).toBe(1); // hit; 2 is now the oldest
    read(4); // evicts 2
    expect(cache.sizeBytes).toBeLessThanOrEqual(cache.maxBytes);
    expect(cache.entryCount).toBe(3);
    log.length = 0;
    read(1);
    read(3);
    read(4);
    expect(log).toEqual([]);
    read(2);
    expect(log).toEqual(['2:timestamp_ms:0']);
  });

  it('cold inserts go first, so one-off wide reads do not push out reused chunks', () => {
    const { cache, log, read } = threeBlockCache();
    read(1);
    read(2);
    for (let id = 10; id < 20; id++) read(id, true);
    log.length = 0;
    read(1);
    read(2);
    expect(log).toEqual([]);
    expect(cache.sizeBytes).toBeLessThanOrEqual(cache.maxBytes);
  });

  it('keeps readers (charged by file size) and drops a segment whose checksum changed', () => {
    const cache = new ChunkCache(1 << 20);
    const src = source([]);
    const seg = cache.segment(src, entry(1));
    expect(cache.reader(seg)).toBeNull();
    cache.keepReader(seg, reader, 500);
    expect(cache.reader(seg)).toBe(reader);
    const changed = { ...entry(1), crc32c: 12345 };
    expect(cache.reader(cache.segment(src, changed))).toBeNull();
    expect(cache.sizeBytes).toBe(0);
  });

  it('a zero budget caches nothing', () => {
    const cache = new ChunkCache(0);
    const log: string[] = [];
    const src = source(log);
    const counters = { cacheHits: 0, cacheMisses: 0 };
    for (let i = 0; i < 3; i++)
      cache.block(cache.segment(src, entry(1)), src, entry(1), reader, 0, ROWS, ['timestamp_ms'], counters);
    expect(log).toHaveLength(3);
    expect(cache.entryCount).toBe(0);
  });
});
