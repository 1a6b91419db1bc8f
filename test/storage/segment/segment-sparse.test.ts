import { describe, expect, it } from 'vitest';
import { COLUMN_NAMES } from '../../../src/model/columns.ts';
import { readSegmentTail, SegmentReader } from '../../../src/storage/segment/segment-reader.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { realisticRows, rowsToColumns, sortRows } from './generate-columns.ts';
import { MemoryReadFile } from './memory-file.ts';

const INFO = { segmentId: 3, day: '2026-05-14', bucket: 0, createdAtMs: 0 };

async function sparseOf(bytes: Uint8Array, chunkBytes: (offset: number, length: number) => Uint8Array) {
  const whole = SegmentReader.fromBytes(bytes);
  const layout = whole.chunkLayout();
  const file = new MemoryReadFile(bytes);
  const sparse = SegmentReader.sparse(bytes.length, bytes.subarray(0, 64), await readSegmentTail(file), (i) =>
    chunkBytes(layout[i].offset, layout[i].length),
  );
  return { whole, sparse };
}

describe('sparse segment reader (point lookups)', () => {
  const bytes = encodeSegment(rowsToColumns(sortRows(realisticRows({ rows: 2_000, seed: 5 }))), INFO, {
    blockRows: 256,
  }).bytes;

  it('reads the same columns as a reader of the whole file, fetching only the chunks it needs', async () => {
    const fetched: number[] = [];
    const { whole, sparse } = await sparseOf(bytes, (offset, length) => {
      fetched.push(offset);
      return bytes.subarray(offset, offset + length);
    });
    expect(sparse.meta).toEqual(whole.meta);
    expect(sparse.readColumns(COLUMN_NAMES, [2, 5])).toEqual(whole.readColumns(COLUMN_NAMES, [2, 5]));
    expect(fetched.length).toBe(COLUMN_NAMES.length * 2);
  });

  it('refuses a damaged chunk and a file without the segment magic', async () => {
    const damaged = bytes.slice();
    const { sparse } = await sparseOf(bytes, (offset, length) => {
      damaged[offset + (length >> 1)] ^= 0x10;
      return damaged.subarray(offset, offset + length);
    });
    expect(() => sparse.readColumns(['timestamp_ms'], [1])).toThrow(/checksum mismatch/);
    const noMagic = bytes.slice(0, 64);
    noMagic[0] ^= 1;
    const tail = await readSegmentTail(new MemoryReadFile(bytes));
    expect(() => SegmentReader.sparse(bytes.length, noMagic, tail, () => new Uint8Array(0))).toThrow(/magic/);
  });
});
