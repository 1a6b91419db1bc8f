import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COLUMN_NAMES } from '../../../src/model/columns.ts';
import { HEADER_BYTES, TRAILER_BYTES } from '../../../src/storage/segment/segment-format.ts';
import {
  readSegmentFooter,
  SegmentCorruptError,
  SegmentReader,
} from '../../../src/storage/segment/segment-reader.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { realisticRows, rowsToColumns } from './generate-columns.ts';
import { MemoryReadFile } from './memory-file.ts';

const INFO = { segmentId: 3, day: '2026-05-14', bucket: 1, createdAtMs: 1_747_200_000_000 };
// Small blocks: many chunks, so every kind of chunk and encoding gets hit.
const encoded = encodeSegment(rowsToColumns(realisticRows({ rows: 60, seed: 9 })), INFO, { blockRows: 16 });
const bytes = encoded.bytes;
const expected = { sizeBytes: bytes.length, checksum: encoded.checksum };
const layout = SegmentReader.fromBytes(bytes).chunkLayout();
const chunksEnd = layout[layout.length - 1].offset + layout[layout.length - 1].length;

function flipped(position: number, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[position] ^= 1 << bit;
  return copy;
}

function regionOf(position: number): string {
  if (position < HEADER_BYTES) return 'header';
  if (position >= bytes.length - TRAILER_BYTES) return 'trailer';
  const chunk = layout.find((c) => position >= c.offset && position < c.offset + c.length);
  if (chunk) return `chunk ${chunk.column} block ${chunk.block}`;
  const sizes = SegmentReader.fromBytes(bytes).sizeBreakdown();
  if (position < chunksEnd + sizes.id_index) return 'id_index';
  return position < chunksEnd + sizes.id_index + sizes.bloom ? 'bloom' : 'footer';
}

function expectCorrupt(fn: () => unknown, message?: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(SegmentCorruptError);
  if (message) expect((error as Error).message).toMatch(message);
}

describe('segment corruption', () => {
  it('covers every region in the test file', () => {
    const regions = new Set(Array.from({ length: bytes.length }, (_, i) => regionOf(i).split(' ')[0]));
    expect([...regions].sort()).toEqual(['bloom', 'chunk', 'footer', 'header', 'id_index', 'trailer']);
    expect(layout.length).toBe(COLUMN_NAMES.length * 4);
  });

  it('with the manifest checksum, any flipped bit anywhere fails at open', () => {
    for (let position = 0; position < bytes.length; position++) {
      for (const bit of [0, 3, 7]) {
        expectCorrupt(() => SegmentReader.fromBytes(flipped(position, bit), expected), /checksum/);
      }
    }
  });

  it('with the manifest checksum, a truncated or extended file fails at open', () => {
    expectCorrupt(
      () => SegmentReader.fromBytes(bytes.subarray(0, bytes.length - 1), expected),
      /bytes, manifest says/,
    );
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expectCorrupt(() => SegmentReader.fromBytes(longer, expected), /bytes, manifest says/);
    expectCorrupt(() =>
      SegmentReader.fromBytes(bytes, { sizeBytes: bytes.length, checksum: (encoded.checksum + 1) >>> 0 }),
    );
  });

  it('without it, a flip in header, filter, footer or trailer fails at open; a flip in a chunk fails when that chunk is read', () => {
    for (let position = 0; position < bytes.length; position++) {
      const region = regionOf(position);
      const damaged = flipped(position, position % 8);
      if (!region.startsWith('chunk')) {
        expectCorrupt(
          () => SegmentReader.fromBytes(damaged),
          new RegExp(region === 'bloom' ? 'filter' : region === 'id_index' ? 'id index' : region),
        );
        continue;
      }
      const reader = SegmentReader.fromBytes(damaged);
      expectCorrupt(() => reader.readColumns(COLUMN_NAMES), new RegExp(`${region}: checksum mismatch`));
      // Other columns stay readable: damage is contained to its chunk.
      const [, column] = region.split(' ');
      const others = COLUMN_NAMES.filter((n) => n !== column);
      expect(reader.readColumns(others).rowCount).toBe(60);
    }
  });

  it('random flips and truncations never decode silently (fast-check)', () => {
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 0, max: 7 }), (position, bit) => {
        const damaged = flipped(position, bit);
        expectCorrupt(() => SegmentReader.fromBytes(damaged).readColumns(COLUMN_NAMES));
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), (length) => {
        expectCorrupt(() => SegmentReader.fromBytes(bytes.subarray(0, length)).readColumns(COLUMN_NAMES));
      }),
      { numRuns: 100 },
    );
  });

  it('readSegmentFooter detects damage in footer and trailer, and ignores damage in regions it does not read', async () => {
    for (let position = 0; position < bytes.length; position++) {
      const region = regionOf(position);
      const file = new MemoryReadFile(flipped(position, 5));
      // Chunks, filter and id index are verified when they are read (segment-store.ts).
      if (region.startsWith('chunk') || ['header', 'bloom', 'id_index'].includes(region)) {
        await expect(readSegmentFooter(file)).resolves.toMatchObject({ meta: encoded.meta });
      } else {
        await expect(readSegmentFooter(file)).rejects.toBeInstanceOf(SegmentCorruptError);
      }
    }
    await expect(readSegmentFooter(new MemoryReadFile(bytes.subarray(0, 10)))).rejects.toThrow(/too short/);
  });

  it('names a wrong magic and an unknown format version', () => {
    const notSegment = Uint8Array.from(bytes);
    notSegment[0] = 0x50;
    expectCorrupt(() => SegmentReader.fromBytes(notSegment), /header magic/);
    const future = Uint8Array.from(bytes);
    future[bytes.length - 5] = 4;
    expectCorrupt(() => SegmentReader.fromBytes(future), /unsupported segment format version 4/);
    // The trailer's version byte has no checksum of its own: an older version read there must
    // not pass (its id index would be read in another layout). The footer repeats it.
    expect(bytes[bytes.length - 5]).toBe(3);
    for (const older of [1, 2]) {
      const flippedVersion = Uint8Array.from(bytes);
      flippedVersion[bytes.length - 5] = older;
      expectCorrupt(() => SegmentReader.fromBytes(flippedVersion), /segment footer/);
    }
  });
});
