import { describe, expect, it } from 'vitest';
import { verifyEncodedSegment } from '../../../src/storage/segment/segment-verify.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { realisticRows, rowsToColumns, sortRows } from './generate-columns.ts';

describe("the segment writer's self-check", () => {
  const columns = rowsToColumns(sortRows(realisticRows({ rows: 1_500, seed: 9 })));
  const encoded = encodeSegment(
    columns,
    { segmentId: 1, day: '2026-05-14', bucket: 0, createdAtMs: 0 },
    { blockRows: 256 },
  );

  it('passes for the columns that were encoded', () => {
    expect(() => verifyEncodedSegment(encoded, columns)).not.toThrow();
  });

  it('names the first row, in any block, whose decoded value differs from the input', () => {
    const ids = [...columns.event_id];
    ids[1_000] = 'evt_changed';
    expect(() => verifyEncodedSegment(encoded, { ...columns, event_id: ids })).toThrow(/event_id row 1000/);
    const ts = columns.timestamp_ms.slice();
    ts[700] += 1;
    expect(() => verifyEncodedSegment(encoded, { ...columns, timestamp_ms: ts })).toThrow(
      /timestamp_ms row 700/,
    );
    const values = columns.quantity.values.slice();
    values[1_499] += 1;
    expect(() =>
      verifyEncodedSegment(encoded, { ...columns, quantity: { ...columns.quantity, values } }),
    ).toThrow(/quantity row 1499/);
    expect(() => verifyEncodedSegment(encoded, { ...columns, rowCount: 1_501 })).toThrow(/row count/);
  });

  it('compares dictionary columns by value, late rows included, whatever their codes', () => {
    const meter = columns.meter_id;
    // The same values under other codes (the dictionary reversed) still pass.
    const reversed = [...meter.dict].reverse();
    const recoded = Uint32Array.from(meter.codes, (c) => meter.dict.length - 1 - c);
    expect(() =>
      verifyEncodedSegment(encoded, { ...columns, meter_id: { dict: reversed, codes: recoded } }),
    ).not.toThrow();
    // A late row whose code was seen equal many times before now names another value.
    const row = 1_400;
    const codes = meter.codes.slice();
    codes[row] = (codes[row] + 1) % meter.dict.length;
    expect(() => verifyEncodedSegment(encoded, { ...columns, meter_id: { ...meter, codes } })).toThrow(
      new RegExp(`meter_id row ${row}`),
    );
    // A value made null.
    const nulled = meter.codes.slice();
    nulled[3] = 0xffffffff;
    expect(() =>
      verifyEncodedSegment(encoded, { ...columns, meter_id: { ...meter, codes: nulled } }),
    ).toThrow(/meter_id row 3/);
  });
});
