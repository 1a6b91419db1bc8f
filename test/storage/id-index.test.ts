import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EventColumns } from '../../src/model/columns.ts';
import { hash128 } from '../../src/model/hash.ts';
import { buildIdIndex } from '../../src/storage/id-index.ts';
import { SegmentReader } from '../../src/storage/segment/segment-reader.ts';
import { encodeSegment } from '../../src/storage/segment/segment-writer.ts';
import { realisticRows, rowsToColumns, sortRows } from './segment/generate-columns.ts';

function expectValidIndex(hashOfRow: Uint32Array, index: { hashes: Uint32Array; rows: Uint32Array }): void {
  expect(index.rows.length).toBe(hashOfRow.length);
  expect([...index.rows].sort((a, b) => a - b)).toEqual(hashOfRow.length ? [...hashOfRow.keys()] : []);
  for (let i = 0; i < index.rows.length; i++) {
    expect(index.hashes[i]).toBe(hashOfRow[index.rows[i]]);
    if (i > 0) {
      const ordered =
        index.hashes[i - 1] < index.hashes[i] ||
        (index.hashes[i - 1] === index.hashes[i] && index.rows[i - 1] < index.rows[i]);
      expect(ordered).toBe(true);
    }
  }
}

describe('id index', () => {
  it('sorts (hash, row) pairs on both sort paths, repeated and extreme hashes included', () => {
    const hash = fc.oneof(fc.constantFrom(0, 1, 0xffffffff, 0x80000000), fc.nat({ max: 0xffffffff }));
    fc.assert(
      fc.property(fc.array(hash, { maxLength: 200 }), (values) => {
        const hashOfRow = Uint32Array.from(values);
        expectValidIndex(hashOfRow, buildIdIndex(hashOfRow));
        expectValidIndex(hashOfRow, buildIdIndex(hashOfRow, 0));
      }),
    );
  });

  it('built by the segment writer equals the one rebuilt from the file', () => {
    const columns = rowsToColumns(sortRows(realisticRows({ rows: 3_000, seed: 11 })));
    const encoded = encodeSegment(columns, { segmentId: 1, day: '2026-05-14', bucket: 0, createdAtMs: 0 });
    const reader = SegmentReader.fromBytes(encoded.bytes);
    const ids = (reader.readColumns(['event_id']) as Pick<EventColumns, 'event_id'>).event_id;
    const rebuilt = buildIdIndex(Uint32Array.from(ids, (id) => hash128(id).h3));
    expect(encoded.idIndex).toEqual(rebuilt);
  });
});
