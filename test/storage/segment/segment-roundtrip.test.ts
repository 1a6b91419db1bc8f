import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COLUMN_NAMES, type EventColumns } from '../../../src/model/columns.ts';
import { hash128 } from '../../../src/model/hash.ts';
import { FOOTER_TAIL_READ_BYTES, FORMAT_VERSION } from '../../../src/storage/segment/segment-format.ts';
import {
  readSegmentFilter,
  readSegmentFooter,
  SegmentReader,
} from '../../../src/storage/segment/segment-reader.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { arbitraryRows, EXTREME_QUANTITIES } from './arbitrary-rows.ts';
import {
  columnsToRows,
  normaliseQuantity,
  type Row,
  realisticRows,
  rowsToColumns,
  sortRows,
} from './generate-columns.ts';
import { MemoryReadFile } from './memory-file.ts';

const INFO = { segmentId: 7, day: '2026-05-14', bucket: 12, createdAtMs: 1_747_200_000_000 };

function normalised(rows: Row[]): Row[] {
  return rows.map((r) => ({ ...r, quantity: normaliseQuantity(r.quantity) }));
}

function decodeAll(bytes: Uint8Array, checksum?: number): { reader: SegmentReader; rows: Row[] } {
  const reader = SegmentReader.fromBytes(
    bytes,
    checksum === undefined ? undefined : { sizeBytes: bytes.length, checksum },
  );
  const batch = reader.readColumns(COLUMN_NAMES) as EventColumns;
  return { reader, rows: columnsToRows(batch) };
}

function distinctSorted<T extends string | null>(values: T[]): T[] {
  return [...new Set(values)].sort((a, b) =>
    a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1,
  );
}

describe('segment round trip', () => {
  it('decodes every column of random segments exactly (fast-check)', () => {
    fc.assert(
      fc.property(
        arbitraryRows(60),
        fc.integer({ min: 1, max: 16 }),
        fc.boolean(),
        (rows, blockRows, junk) => {
          const encoded = encodeSegment(rowsToColumns(rows, { junkDictEntries: junk }), INFO, {
            blockRows,
            zstdLevel: 3,
          });
          const { reader, rows: back } = decodeAll(encoded.bytes, encoded.checksum);
          expect(back).toEqual(normalised(rows));
          expect(reader.meta).toEqual(encoded.meta);
          const m = encoded.meta;
          expect(m).toMatchObject({ ...INFO, formatVersion: FORMAT_VERSION, rowCount: rows.length });
          expect(m.minTimestampMs).toBe(Math.min(...rows.map((r) => r.timestamp_ms)));
          expect(m.maxTimestampMs).toBe(Math.max(...rows.map((r) => r.timestamp_ms)));
          expect(m.accountIds).toEqual(distinctSorted(rows.map((r) => r.account_id)));
          expect(m.productIds).toEqual(distinctSorted(rows.map((r) => r.product_id)));
          expect(m.meterIds).toEqual(distinctSorted(rows.map((r) => r.meter_id)));
          expect(m.modelIds).toEqual(distinctSorted(rows.map((r) => r.model_id)));
          expect(m.minAccountId).toBe(rows[0].account_id);
          expect(m.maxAccountId).toBe(rows[rows.length - 1].account_id);
          expect(m.blocks.length).toBe(Math.ceil(rows.length / blockRows));
          m.blocks.forEach((b, i) => {
            const part = rows.slice(b.firstRow, b.firstRow + b.rowCount);
            expect(b.firstRow).toBe(i * blockRows);
            expect(b.minTimestampMs).toBe(Math.min(...part.map((r) => r.timestamp_ms)));
            expect(b.maxTimestampMs).toBe(Math.max(...part.map((r) => r.timestamp_ms)));
            expect(b.minAccountId).toBe(part[0].account_id);
            expect(b.maxAccountId).toBe(part[part.length - 1].account_id);
          });
          for (const r of rows) {
            const h = hash128(r.event_id);
            expect(reader.mayContainEventId(h.h1, h.h2)).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('keeps every extreme quantity exact', () => {
    const rows = sortRows(
      EXTREME_QUANTITIES.map((q, i) => ({
        ...realisticRows({ rows: 1, seed: i })[0],
        event_id: `evt_${i}`,
        quantity: q,
      })),
    );
    const encoded = encodeSegment(rowsToColumns(rows), INFO, { blockRows: 4 });
    const batch = SegmentReader.fromBytes(encoded.bytes).readColumns(['quantity']);
    const back = columnsToRows({
      ...rowsToColumns(rows),
      quantity: batch.quantity ?? { values: new Float64Array(0), big: null },
    });
    expect(back.map((r) => r.quantity)).toEqual(rows.map((r) => normaliseQuantity(r.quantity)));
  });

  it('round-trips realistic segments and shares one dictionary per column across reads', () => {
    const rows = realisticRows({ rows: 5000, seed: 11 });
    const encoded = encodeSegment(rowsToColumns(rows, { junkDictEntries: true }), INFO);
    const { reader, rows: back } = decodeAll(encoded.bytes, encoded.checksum);
    expect(back).toEqual(normalised(rows));
    expect(encoded.meta.blocks.map((b) => b.rowCount)).toEqual([4096, 904]);
    const a = reader.readColumns(['model_id'], [0]).model_id;
    const b = reader.readColumns(['model_id'], [1]).model_id;
    expect(a?.dict).toBe(b?.dict);
    expect(a?.dict).not.toContain('zz-unused');
  });

  it('readSegmentFooter reads only the tail and returns the same meta; the filter reads alone', async () => {
    const rows = realisticRows({ rows: 3000, seed: 5 });
    const encoded = encodeSegment(rowsToColumns(rows), INFO);
    const file = new MemoryReadFile(encoded.bytes);
    const { meta, bloom } = await readSegmentFooter(file);
    expect(meta).toEqual(encoded.meta);
    expect(file.reads.length).toBe(1);
    const columnBytes = encoded.bytes.length - FOOTER_TAIL_READ_BYTES;
    expect(file.reads[0].offset).toBe(Math.max(0, columnBytes));
    const filter = await readSegmentFilter(file, bloom);
    for (const r of rows) {
      const h = hash128(r.event_id);
      expect(filter.mayContain(h.h1, h.h2)).toBe(true);
    }
    expect(file.reads[1]).toEqual({ offset: bloom.offset, length: bloom.length });
  });

  it('readSegmentFooter reads more when footer and filter outgrow the first tail read', async () => {
    const rows = realisticRows({ rows: 9000, seed: 6 });
    const encoded = encodeSegment(rowsToColumns(rows), INFO, { bloomBitsPerKey: 64 });
    expect(encoded.bytes.length).toBeGreaterThan(FOOTER_TAIL_READ_BYTES * 2);
    const file = new MemoryReadFile(encoded.bytes);
    const { meta, bloom } = await readSegmentFooter(file);
    expect(meta).toEqual(encoded.meta);
    expect(bloom.length).toBe((9000 * 64) / 8 + 5);
    expect(file.reads.length).toBe(1);
    // Never the column data nor the filter: no read starts before the footer.
    const footerLength = new DataView(encoded.bytes.buffer).getUint32(encoded.bytes.length - 13, true);
    const footerStart = encoded.bytes.length - 13 - footerLength;
    expect(Math.min(...file.reads.map((r) => r.offset))).toBeGreaterThanOrEqual(
      Math.min(footerStart, encoded.bytes.length - FOOTER_TAIL_READ_BYTES),
    );
  });
});
