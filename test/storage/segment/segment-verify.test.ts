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
});
