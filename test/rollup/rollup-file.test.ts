/**
 * The rollup file on its own: lazily decoded blocks equal eagerly decoded ones column by
 * column, the meter grain keeps only its columns with the same totals, a block stored as one
 * zstd frame (as older files have them) decodes to the same rows, a block that passes its
 * checksum but does not decode reports through the reader's error hook, blocks are cut at
 * account bounds, and files store dictionaries in text order with every row's values kept.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/storage/encoding/crc32c.ts';
import { zlibDecompress, zstdCompress } from '../../src/storage/encoding/zstd.ts';
import {
  BLOCK_COLUMNS,
  blockEnds,
  decodeRollupBlock,
  decodeRollupFooter,
  encodeRollupFile,
  readRollupFile,
  ROLLUP_TRAILER_BYTES,
  rollupBlockRows,
  rollupFooterRange,
} from '../../src/rollup/rollup-file.ts';
import { buildRollupLevels, ROLLUP_DICT_COLUMNS } from '../../src/rollup/rollup-rows.ts';
import type { QuantityColumn } from '../../src/model/columns.ts';
import { columnsOf } from '../export/fixtures.ts';

const COLUMNS = BLOCK_COLUMNS;

function footerOf(bytes: Uint8Array) {
  const range = rollupFooterRange(bytes.subarray(bytes.length - ROLLUP_TRAILER_BYTES), bytes.length);
  return decodeRollupFooter(
    bytes.subarray(range.offset, range.offset + range.length),
    range.crc,
    bytes.length,
  );
}

/** Events over 40 accounts and three meters, one every 7 minutes from May 2026. */
function events(quantities: readonly bigint[]) {
  const c = columnsOf(
    quantities,
    Array.from({ length: 40 }, (_, i) => `acct_${i}`),
  );
  c.meter_id = { dict: ['m0', 'm1', 'm2'], codes: Uint32Array.from(quantities, (_, i) => i % 3) };
  c.product_id = {
    dict: ['p0', 'p1'],
    codes: Uint32Array.from(quantities, (_, i) => Math.floor(i / 40) % 2),
  };
  c.timestamp_ms = Float64Array.from(quantities, (_, i) => Date.UTC(2026, 4, 1) + i * 7 * 60_000);
  return c;
}

describe('rollup file', () => {
  it('a lazily decoded block equals the eager decode, column by column', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), { minLength: 1, maxLength: 3000 }),
        (quantities) => {
          const levels = buildRollupLevels(events(quantities));
          for (const [level, rows] of levels) {
            const file = encodeRollupFile(rows, level);
            const footer = footerOf(file.bytes);
            const eager = readRollupFile(file.bytes).rows;
            expect(footer.blocks.every((b) => b.rows <= rollupBlockRows(level))).toBe(true);
            footer.blocks.forEach((meta, i) => {
              const lazy = decodeRollupBlock(
                footer,
                i,
                file.bytes.subarray(meta.offset, meta.offset + meta.length),
                {
                  onError: (err) => {
                    throw err;
                  },
                },
              );
              expect(lazy.rowCount).toBe(eager[i].rowCount);
              for (const name of COLUMNS) expect(lazy[name], `${level} ${name}`).toEqual(eager[i][name]);
            });
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('the meter grain keeps account, meter, unit and kind, with the same totals per meter', () => {
    const quantities = Array.from({ length: 2000 }, (_, i) => BigInt((i * 37) % 1000));
    const levels = buildRollupLevels(events(quantities));
    const month = levels.get('month');
    const meter = levels.get('meter_month');
    expect(month && meter).toBeTruthy();
    if (month === undefined || meter === undefined) return;
    expect(meter.rowCount).toBeLessThan(month.rowCount);
    for (const name of ['subscription_id', 'product_id', 'model_id', 'source'] as const)
      expect(meter[name].dict).toEqual([]);
    const totals = (rows: typeof month) => {
      const out = new Map<string, bigint>();
      for (let i = 0; i < rows.rowCount; i++) {
        const key = `${rows.account_id.dict[rows.account_id.codes[i]]}|${rows.meter_id.dict[rows.meter_id.codes[i]]}`;
        out.set(key, (out.get(key) ?? 0n) + BigInt(rows.quantity.values[i]));
      }
      return out;
    };
    expect(totals(meter)).toEqual(totals(month));
    // One row per account and meter: the grain has nothing else (one unit, one kind).
    expect(meter.rowCount).toBe(totals(meter).size);
  });

  it('a block stored as one zstd frame decodes to the same rows as the block stored as is', () => {
    const rows = buildRollupLevels(events(Array.from({ length: 300 }, (_, i) => BigInt(i * 7)))).get('month');
    if (rows === undefined) throw new Error('no month rows');
    const file = encodeRollupFile(rows, 'month');
    const footer = footerOf(file.bytes);
    const meta = footer.blocks[0];
    expect(meta.zstd).toBe(false);
    const plain = file.bytes.subarray(meta.offset, meta.offset + meta.length);
    const packed = zstdCompress(plain, 3);
    const patched = {
      ...footer,
      blocks: [{ ...meta, zstd: true, length: packed.length, crc32c: crc32c(packed) }],
    };
    const fromZstd = decodeRollupBlock(patched, 0, packed);
    const asIs = decodeRollupBlock(footer, 0, plain);
    for (const name of COLUMNS) expect(fromZstd[name]).toEqual(asIs[name]);
    expect(fromZstd.rowCount).toBe(meta.rows);
  });

  it('a block that passes its checksum but does not decode reports through the error hook', () => {
    const rows = buildRollupLevels(events(Array.from({ length: 300 }, (_, i) => BigInt(i)))).get('month');
    if (rows === undefined) throw new Error('no month rows');
    const file = encodeRollupFile(rows, 'month');
    const footer = footerOf(file.bytes);
    const meta = footer.blocks[0];
    const stored = file.bytes.subarray(meta.offset, meta.offset + meta.length);
    const plain = meta.zstd ? zlibDecompress(stored) : stored.slice();
    // The quantity chunk (after 7 dictionary chunks, kind and the bucket) loses its last byte.
    const before = meta.chunks.slice(0, 9).reduce((a, b) => a + b, 0);
    const damaged = new Uint8Array(plain.length - 1);
    damaged.set(plain.subarray(0, before + meta.chunks[9] - 1));
    damaged.set(plain.subarray(before + meta.chunks[9]), before + meta.chunks[9] - 1);
    const chunks = meta.chunks.slice();
    chunks[9]--;
    const patched = {
      ...footer,
      blocks: [
        {
          ...meta,
          zstd: false,
          length: damaged.length,
          raw_length: damaged.length,
          crc32c: crc32c(damaged),
          chunks,
        },
      ],
    };
    const block = decodeRollupBlock(patched, 0, damaged, {
      onError: () => {
        throw new Error('reported corrupt');
      },
    });
    // Columns before the damaged one decode; the damaged one is reported.
    expect(block.account_id.codes.length).toBe(meta.rows);
    expect(() => block.quantity).toThrow('reported corrupt');
  });

  it('blocks hold whole accounts up to the block size, and a larger account alone in equal blocks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 0, maxLength: 30 }),
        fc.integer({ min: 1, max: 16 }),
        (runs, blockRows) => {
          const codes = Uint32Array.from(
            runs.flatMap((length, account) => Array<number>(length).fill(account)),
          );
          const ends = blockEnds(codes, codes.length, blockRows);
          const starts = ends.map((_, b) => (b === 0 ? 0 : ends[b - 1]));
          expect(ends.length === 0 ? 0 : ends[ends.length - 1]).toBe(codes.length);
          starts.forEach((start, b) => {
            const size = ends[b] - start;
            expect(size).toBeGreaterThan(0);
            expect(size).toBeLessThanOrEqual(blockRows);
          });
          let at = 0;
          runs.forEach((length) => {
            const first = ends.findIndex((e) => e > at);
            const last = ends.findIndex((e) => e >= at + length);
            if (length <= blockRows) expect(last).toBe(first);
            else {
              // Its own blocks: one starts where it starts and one ends where it ends.
              expect(starts[first]).toBe(at);
              expect(ends[last]).toBe(at + length);
              expect(last - first + 1).toBe(Math.ceil(length / blockRows));
            }
            at += length;
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps every numeric value of every level: sums and extremes beyond 2^53, times years apart', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            quantity: fc.oneof(
              fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
              fc.bigInt({ min: -1000n, max: 1000n }),
            ),
            ts: fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }),
          }),
          { minLength: 1, maxLength: 2000 },
        ),
        (drawn) => {
          const c = events(drawn.map((d) => d.quantity));
          c.timestamp_ms = Float64Array.from(drawn, (d) => d.ts);
          for (const [level, rows] of buildRollupLevels(c)) {
            const blocks = readRollupFile(encodeRollupFile(rows, level).bytes).rows;
            const numeric = ['timestamp_ms', 'count', 'first_ts', 'last_ts'] as const;
            for (const name of numeric)
              expect(
                blocks.flatMap((b) => Array.from(b[name].subarray(0, b.rowCount))),
                `${level} ${name}`,
              ).toEqual(Array.from(rows[name].subarray(0, rows.rowCount)));
            for (const name of ['quantity', 'min', 'max'] as const) {
              const exact = (q: QuantityColumn, n: number) =>
                Array.from({ length: n }, (_, i) => q.big?.get(i) ?? BigInt(q.values[i]));
              expect(
                blocks.flatMap((b) => exact(b[name], b.rowCount)),
                `${level} ${name}`,
              ).toEqual(exact(rows[name], rows.rowCount));
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('stores dictionaries in text order and keeps every row its values', () => {
    const c = events(Array.from({ length: 500 }, (_, i) => BigInt(i)));
    const built = buildRollupLevels(c).get('month');
    if (built === undefined) throw new Error('no month rows');
    // A dictionary out of text order (as merged rows from several files have them).
    const meters = built.meter_id;
    const reversed = [...meters.dict].reverse();
    const rows = {
      ...built,
      meter_id: { dict: reversed, codes: meters.codes.map((code) => reversed.indexOf(meters.dict[code])) },
    };
    const file = readRollupFile(encodeRollupFile(rows, 'month').bytes);
    for (const name of ROLLUP_DICT_COLUMNS) {
      const dict = file.footer.dicts[name];
      expect(dict, name).toEqual([...dict].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    const valuesOf = (col: { dict: readonly string[]; codes: Uint32Array }, n: number) =>
      Array.from(col.codes.subarray(0, n), (code) => col.dict[code] ?? null);
    let at = 0;
    for (const block of file.rows) {
      for (const name of ROLLUP_DICT_COLUMNS)
        expect(valuesOf(block[name], block.rowCount), name).toEqual(
          valuesOf({ dict: rows[name].dict, codes: rows[name].codes.subarray(at) }, block.rowCount),
        );
      at += block.rowCount;
    }
    expect(at).toBe(rows.rowCount);
  });
});
