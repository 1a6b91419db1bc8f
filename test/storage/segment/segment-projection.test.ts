import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COLUMN_NAMES, type ColumnName, type EventColumns } from '../../../src/model/columns.ts';
import { eventOfRow } from '../../../src/model/event.ts';
import { SegmentReader } from '../../../src/storage/segment/segment-reader.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { arbitraryRows } from './arbitrary-rows.ts';
import {
  columnsToRows,
  normaliseQuantity,
  type Row,
  realisticRows,
  rowsToColumns,
} from './generate-columns.ts';

const INFO = { segmentId: 1, day: '2026-05-14', bucket: 0, createdAtMs: 1 };

/** Fills the columns a projection left out with those of `like`, so rows can be rebuilt. */
function withDefaults(batch: Partial<EventColumns> & { rowCount: number }, like: EventColumns): EventColumns {
  return { ...like, ...batch } as EventColumns;
}

describe('segment projection and block selection', () => {
  it('readRowAt gives each row exactly as readColumns gives it, for any columns', () => {
    fc.assert(
      fc.property(
        arbitraryRows(40),
        fc.integer({ min: 1, max: 8 }),
        fc.subarray([...COLUMN_NAMES], { minLength: 1 }),
        (rows, blockRows, names) => {
          const encoded = encodeSegment(rowsToColumns(rows), INFO, {
            blockRows,
            zstdLevel: 1,
            verify: false,
          });
          const reader = SegmentReader.fromBytes(encoded.bytes);
          const all = reader.readColumns([...COLUMN_NAMES]) as EventColumns;
          reader.meta.blocks.forEach((block, b) => {
            for (let r = 0; r < block.rowCount; r++) {
              const one = reader.readRowAt(names, b, r);
              expect(one.rowCount).toBe(1);
              expect(Object.keys(one).sort()).toEqual(['rowCount', ...names].sort());
              // Columns not asked for are borrowed from the full read of that row.
              const rowOfAll = { ...all, ...sliceRow(all, block.firstRow + r) };
              const back = eventOfRow(withDefaults(one, rowOfAll as EventColumns), 0);
              expect(back).toEqual(eventOfRow(all, block.firstRow + r));
            }
          });
          expect(() => reader.readRowAt(names, 0, reader.meta.blocks[0].rowCount)).toThrow(RangeError);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('returns exactly the chosen columns of the chosen blocks, rows in block order', () => {
    fc.assert(
      fc.property(
        arbitraryRows(50),
        fc.integer({ min: 1, max: 8 }),
        fc.subarray([...COLUMN_NAMES], { minLength: 1 }),
        fc.infiniteStream(fc.boolean()),
        (rows, blockRows, names, picks) => {
          const encoded = encodeSegment(rowsToColumns(rows), INFO, {
            blockRows,
            zstdLevel: 1,
            verify: false,
          });
          const reader = SegmentReader.fromBytes(encoded.bytes);
          const blockCount = reader.meta.blocks.length;
          const iterator = picks[Symbol.iterator]();
          const chosen = Array.from({ length: blockCount }, (_, i) => i).filter(
            () => iterator.next().value === true,
          );
          const batch = reader.readColumns(names, chosen);
          const expectedRows = chosen.flatMap((b) => {
            const block = reader.meta.blocks[b];
            return rows.slice(block.firstRow, block.firstRow + block.rowCount);
          });
          expect(batch.rowCount).toBe(expectedRows.length);
          expect(Object.keys(batch).sort()).toEqual(['rowCount', ...names].sort());
          // Rebuild rows from the projection (other columns borrowed from the expected rows).
          const like = rowsToColumns(expectedRows);
          const back = expectedRows.length === 0 ? [] : columnsToRows(withDefaults(batch, like));
          const project = (r: Row) =>
            Object.fromEntries(
              names.map((n) => [n, n === 'quantity' ? normaliseQuantity(r.quantity) : r[n as keyof Row]]),
            );
          expect(back.map(project)).toEqual(expectedRows.map(project));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('readEventIdBytes gives the UTF-8 of the event ids readColumns gives, for any blocks', () => {
    const utf8 = new TextEncoder();
    fc.assert(
      fc.property(
        arbitraryRows(50),
        fc.integer({ min: 1, max: 8 }),
        fc.infiniteStream(fc.boolean()),
        (rows, blockRows, picks) => {
          const reader = SegmentReader.fromBytes(
            encodeSegment(rowsToColumns(rows), INFO, { blockRows, zstdLevel: 1, verify: false }).bytes,
          );
          const iterator = picks[Symbol.iterator]();
          const chosen = reader.meta.blocks.map((_, i) => i).filter(() => iterator.next().value === true);
          const ids = reader.readColumns(['event_id'], chosen).event_id ?? [];
          const packed = reader.readEventIdBytes(chosen);
          expect(packed.ends.length).toBe(ids.length);
          let start = 0;
          ids.forEach((id, i) => {
            expect(packed.bytes.subarray(start, packed.ends[i])).toEqual(utf8.encode(id));
            start = packed.ends[i];
          });
          expect(start).toBe(packed.bytes.length);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('readEventIdBytes keeps each block of compressed variable-length ids (decoder scratch reused)', () => {
    const rows = realisticRows({ rows: 5_000, seed: 9 }).map((r, i) => ({
      ...r,
      event_id: `evt-${i * 7919}`,
    }));
    const reader = SegmentReader.fromBytes(
      encodeSegment(rowsToColumns(rows), INFO, { blockRows: 1024 }).bytes,
    );
    const blocks = reader.meta.blocks.map((_, i) => i);
    expect(blocks.length).toBeGreaterThan(2);
    const packed = reader.readEventIdBytes(blocks);
    const back = Array.from(packed.ends, (end, i) =>
      new TextDecoder().decode(packed.bytes.subarray(i === 0 ? 0 : packed.ends[i - 1], end)),
    );
    expect(back).toEqual(reader.readColumns(['event_id'], blocks).event_id);
  });

  it('selectBlocks keeps every block that can hold a matching row and drops blocks that cannot', () => {
    fc.assert(
      fc.property(
        arbitraryRows(60),
        fc.integer({ min: 1, max: 8 }),
        fc.option(fc.constantFrom('a', 'acct_1', 'b', 'Z', 'é', 'zzz'), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
        (rows, blockRows, accountId, fromMs, toMs) => {
          const reader = SegmentReader.fromBytes(
            encodeSegment(rowsToColumns(rows), INFO, { blockRows, zstdLevel: 1, verify: false }).bytes,
          );
          const selected = reader.selectBlocks({ accountId, fromMs, toMs });
          expect([...selected].sort((a, b) => a - b)).toEqual(selected);
          reader.meta.blocks.forEach((block, i) => {
            const part = rows.slice(block.firstRow, block.firstRow + block.rowCount);
            const matches = part.some(
              (r) =>
                (accountId === undefined || r.account_id === accountId) &&
                (fromMs === undefined || r.timestamp_ms >= fromMs) &&
                (toMs === undefined || r.timestamp_ms < toMs),
            );
            if (matches) expect(selected).toContain(i);
            // Exactness w.r.t. the block metadata: dropped only when the ranges cannot overlap.
            const overlaps =
              (accountId === undefined ||
                (accountId >= block.minAccountId && accountId <= block.maxAccountId)) &&
              (fromMs === undefined || block.maxTimestampMs >= fromMs) &&
              (toMs === undefined || block.minTimestampMs < toMs);
            expect(selected.includes(i)).toBe(overlaps);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('skips most blocks of a realistic segment for one account', () => {
    const rows = realisticRows({ rows: 20_000, seed: 3 });
    const reader = SegmentReader.fromBytes(
      encodeSegment(rowsToColumns(rows), INFO, { blockRows: 1024 }).bytes,
    );
    const account = rows[rows.length - 1].account_id;
    const selected = reader.selectBlocks({ accountId: account });
    expect(selected.length).toBeLessThan(reader.meta.blocks.length / 2);
    const batch = reader.readColumns(['account_id', 'quantity'], selected);
    const col = batch.account_id;
    let matching = 0;
    for (let i = 0; i < batch.rowCount; i++) if (col?.dict[col.codes[i]] === account) matching++;
    expect(matching).toBe(rows.filter((r) => r.account_id === account).length);
  });

  it('rejects unknown, repeated or unordered block indexes and unknown columns', () => {
    const reader = SegmentReader.fromBytes(
      encodeSegment(rowsToColumns(realisticRows({ rows: 30, seed: 1 })), INFO, { blockRows: 10 }).bytes,
    );
    expect(() => reader.readColumns(['kind'], [3])).toThrow(/no block 3/);
    expect(() => reader.readEventIdBytes([1, 0])).toThrow(/strictly ascending/);
    expect(() => reader.readColumns(['kind'], [1, 1])).toThrow(/ascending/);
    expect(() => reader.readColumns(['kind'], [2, 0])).toThrow(/ascending/);
    expect(() => reader.readColumns(['nope' as ColumnName])).toThrow(/unknown column/);
    expect(reader.readColumns(['kind'], []).rowCount).toBe(0);
  });
});

/** Row `row` of full columns as one-row columns (the borrowed values of readRowAt's check). */
function sliceRow(c: EventColumns, row: number): EventColumns {
  const out = { rowCount: 1 } as EventColumns;
  const set = out as unknown as Record<string, unknown>;
  for (const name of COLUMN_NAMES) {
    const v = c[name];
    if (Array.isArray(v)) set[name] = [v[row]];
    else if (v instanceof Float64Array || v instanceof Uint8Array) set[name] = v.slice(row, row + 1);
    else if ('values' in v) {
      const big = v.big?.get(row);
      out.quantity = {
        values: v.values.slice(row, row + 1),
        big: big === undefined ? null : new Map([[0, big]]),
      };
    } else set[name] = { dict: v.dict, codes: v.codes.slice(row, row + 1) };
  }
  return out;
}
