import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hash128 } from '../../../src/model/hash.ts';
import { eventOfRow } from '../../../src/model/event.ts';
import { COLUMN_NAMES, type EventColumns } from '../../../src/model/columns.ts';
import { payloadHash } from '../../../src/model/payload-hash.ts';
import {
  idIndexChunkEntries,
  idIndexChunkBits,
  idIndexPayloadAt,
  idIndexRowAt,
  rowBitsOf,
  searchIdIndexEntries,
  storedHashShift,
} from '../../../src/storage/id-index.ts';
import { SegmentReader } from '../../../src/storage/segment/segment-reader.ts';
import { verifyEncodedSegment } from '../../../src/storage/segment/segment-verify.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { arbitraryRows } from './arbitrary-rows.ts';
import { realisticRows, rowsToColumns } from './generate-columns.ts';

const INFO = { segmentId: 1, day: '2026-05-14', bucket: 0, createdAtMs: 1 };

/** Every (row, payload words) the file's id index gives for the id hash h3. */
function hitsOf(reader: SegmentReader, bytes: Uint8Array, h3: number): { row: number; payload: number[] }[] {
  const layout = reader.idIndexLayout;
  if (layout === null) throw new Error('no stored index');
  const n = reader.meta.rowCount;
  const key = h3 >>> storedHashShift(n);
  const out: { row: number; payload: number[] }[] = [];
  layout.regions.forEach((region, c) => {
    const chunk = bytes.subarray(region.offset, region.offset + region.length);
    const entries = idIndexChunkEntries(reader.meta.formatVersion);
    const count = Math.min(entries, n - c * entries);
    const bits = idIndexChunkBits(chunk, count, true);
    for (const e of searchIdIndexEntries(bits, layout.firstHashes[c], count, rowBitsOf(n), key))
      out.push({ row: idIndexRowAt(bits, e, rowBitsOf(n)), payload: idIndexPayloadAt(chunk, e) });
  });
  return out;
}

describe('payload hashes in the id index (format 3)', () => {
  it('name, for every stored row, the payload hash of that row', () => {
    fc.assert(
      fc.property(arbitraryRows(60), fc.integer({ min: 1, max: 8 }), (rows, blockRows) => {
        const encoded = encodeSegment(rowsToColumns(rows), INFO, { blockRows, zstdLevel: 1 });
        const reader = SegmentReader.fromBytes(encoded.bytes);
        expect(reader.meta.formatVersion).toBe(3);
        const all = reader.readColumns([...COLUMN_NAMES]) as EventColumns;
        for (let row = 0; row < all.rowCount; row++) {
          const e = eventOfRow(all, row);
          const p = payloadHash(e);
          const hits = hitsOf(reader, encoded.bytes, hash128(e.event_id).h3).filter((h) => h.row === row);
          expect(hits).toEqual([{ row, payload: [p.h1, p.h2] }]);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('are left out on request (format 2, still read), at about 8 bytes per event', () => {
    const columns = rowsToColumns(realisticRows({ rows: 3000, seed: 5 }));
    const v3 = encodeSegment(columns, INFO);
    const v2 = encodeSegment(columns, INFO, { payloadHashes: false });
    expect(SegmentReader.fromBytes(v2.bytes).meta.formatVersion).toBe(2);
    const idIndexBytes = (bytes: Uint8Array) => SegmentReader.fromBytes(bytes).sizeBreakdown().id_index;
    // 8 bytes per entry; the bit streams differ by a few bytes (format 3 cuts 512-entry chunks,
    // each with its first hash in the footer and its last byte padded).
    const extra = idIndexBytes(v3.bytes) - idIndexBytes(v2.bytes);
    expect(Math.abs(extra - 8 * columns.rowCount)).toBeLessThan(16);
    expect(SegmentReader.fromBytes(v2.bytes).readColumns(['event_id'])).toEqual(
      SegmentReader.fromBytes(v3.bytes).readColumns(['event_id']),
    );
  });

  it('are checked by the writer: a wrong hash for one row fails the self-check', () => {
    const columns = rowsToColumns(realisticRows({ rows: 500, seed: 6 }));
    const encoded = encodeSegment(columns, INFO, { verify: false });
    expect(() => verifyEncodedSegment(encoded, columns)).not.toThrow();
    const tampered = Uint32Array.from(encoded.payloadHashes);
    tampered[4 * 123 + 1] ^= 1;
    expect(() => verifyEncodedSegment({ ...encoded, payloadHashes: tampered }, columns)).toThrow(
      /payload hash of id index entry/,
    );
  });
});
