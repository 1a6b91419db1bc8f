/** Decimal128 encoding and the exact i128 word sum, checked against BigInt arithmetic. */
import { tableFromIPC } from 'apache-arrow';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RowGroupBuilder } from '../../src/export/row-group-builder.ts';
import { sumI128Words } from '../../src/export/quantity-sum.ts';
import { NULL_CODE } from '../../src/model/columns.ts';
import { packIds } from '../../src/model/packed-ids.ts';
import { QUANTITY_ABS_MAX } from '../../src/model/quantity.ts';
import { columnsOf } from './fixtures.ts';

const quantity = fc.oneof(
  fc.bigInt({ min: -QUANTITY_ABS_MAX, max: QUANTITY_ABS_MAX }),
  fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n }),
  fc.constantFrom(
    0n,
    1n,
    -1n,
    2n ** 32n,
    -(2n ** 32n),
    2n ** 53n - 1n,
    -(2n ** 53n - 1n),
    2n ** 63n,
    -(2n ** 64n),
    QUANTITY_ABS_MAX,
    -QUANTITY_ABS_MAX,
  ),
);

describe('RowGroupBuilder', () => {
  it('writes every quantity as its exact i128 and sums exactly', () => {
    fc.assert(
      fc.property(fc.array(quantity, { minLength: 1, maxLength: 200 }), (qs) => {
        const builder = new RowGroupBuilder(256);
        const c = columnsOf(qs, ['a', 'b']);
        builder.append(c, Uint32Array.from(qs.keys()));
        const table = tableFromIPC(builder.takeIpc());
        const data = table.getChild('quantity')?.data[0];
        expect(data?.length).toBe(qs.length);
        const words = data?.values as Uint32Array;
        qs.forEach((q, i) => {
          let u = 0n;
          for (let w = 3; w >= 0; w--) u = (u << 32n) | BigInt(words[i * 4 + w]);
          expect(BigInt.asIntN(128, u)).toBe(q);
        });
        const expected = qs.reduce((a, b) => a + b, 0n);
        expect(sumI128Words(words, qs.length)).toBe(expected);
        expect(builder.takeTotals()).toEqual({ rows: qs.length, quantitySum: expected });
      }),
      { numRuns: 300 },
    );
  });

  it('reads dictionaries that grew after first use (live memtable dictionaries only grow)', () => {
    const builder = new RowGroupBuilder(16);
    const accounts = ['a'];
    const c = columnsOf([1n, 2n], accounts);
    builder.append(c, Uint32Array.of(0));
    accounts.push('b');
    c.account_id.codes[1] = 1;
    builder.append(c, Uint32Array.of(1));
    const table = tableFromIPC(builder.takeIpc());
    expect(table.getChild('account_id')?.toArray()).toEqual(['a', 'b']);
    expect(table.getChild('subscription_id')?.toArray()).toEqual([null, null]);
  });

  it('copies dictionary values exactly, in runs of any length, with nulls, across row groups', () => {
    const entry = fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.string({ minLength: 14, maxLength: 90 }),
      fc.constant('ü€𝄞'),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(entry, { minLength: 1, maxLength: 6 }),
        fc.array(fc.record({ code: fc.nat(6), run: fc.integer({ min: 1, max: 40 }) }), { maxLength: 30 }),
        (dict, runs) => {
          const codes: number[] = [];
          for (const { code, run } of runs)
            for (let k = 0; k < run; k++) codes.push(code >= dict.length ? NULL_CODE : code);
          const n = codes.length;
          const c = columnsOf(
            codes.map(() => 1n),
            ['a'],
          );
          c.model_id = { dict, codes: Uint32Array.from(codes) };
          const builder = new RowGroupBuilder(64);
          const got: (string | null)[] = [];
          for (let start = 0; start < n; start += 64) {
            builder.append(
              c,
              Uint32Array.from({ length: Math.min(64, n - start) }, (_, i) => start + i),
            );
            const column = tableFromIPC(builder.takeIpc()).getChild('model_id');
            got.push(...(column?.toArray() as (string | null)[]));
          }
          expect(got).toEqual(codes.map((code) => (code === NULL_CODE ? null : dict[code])));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('writes all-null, mixed and empty appends of nullable strings', () => {
    const builder = new RowGroupBuilder(8);
    const c = columnsOf([1n, 2n, 3n, 4n], ['a', 'b']);
    c.correction_reason = [null, 'late', null, 'dup'];
    const groups: [number[], (string | null)[], (string | null)[]][] = [
      [
        [0, 2],
        [null, null],
        ['a', 'a'],
      ],
      [
        [1, 2, 3],
        ['late', null, 'dup'],
        ['b', 'a', 'b'],
      ],
      [[0], [null], ['a']],
    ];
    for (const [rows, reasons, accounts] of groups) {
      // The chunk's rows in two appends: the all-null case has its own path.
      builder.append(c, Uint32Array.from(rows.slice(0, 1)));
      builder.append(c, Uint32Array.from(rows.slice(1)));
      const table = tableFromIPC(builder.takeIpc());
      expect(table.numRows).toBe(rows.length);
      expect(table.getChild('correction_reason')?.toArray()).toEqual(reasons);
      expect(table.getChild('correction_original_event_id')?.toArray()).toEqual(rows.map(() => null));
      expect(table.getChild('account_id')?.toArray()).toEqual(accounts);
      expect(table.getChild('event_id')?.toArray()).toEqual(rows.map((r) => `e${r}`));
    }
  });

  it('writes packed UTF-8 event ids exactly as the same ids given as strings, for any rows', () => {
    const ids = fc.array(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }), {
      minLength: 1,
      maxLength: 60,
    });
    fc.assert(
      fc.property(
        ids.chain((values) =>
          fc.tuple(fc.constant(values), fc.array(fc.nat(values.length - 1), { maxLength: 40 })),
        ),
        ([values, picks]) => {
          // Sorted with repeats: runs of consecutive rows, gaps and repeated rows.
          const rows = Uint32Array.from(picks.sort((a, b) => a - b));
          const c = {
            ...columnsOf(
              values.map(() => 1n),
              ['a'],
            ),
            event_id: values,
          };
          const asStrings = new RowGroupBuilder(64);
          const asBytes = new RowGroupBuilder(64);
          asStrings.append(c, rows);
          asBytes.append({ ...c, event_id: packIds(values) }, rows);
          const expected = Array.from(rows, (r) => values[r]);
          expect(tableFromIPC(asBytes.takeIpc()).getChild('event_id')?.toArray()).toEqual(expected);
          expect(tableFromIPC(asStrings.takeIpc()).getChild('event_id')?.toArray()).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses to buffer more than one row group', () => {
    const builder = new RowGroupBuilder(2);
    const c = columnsOf([1n, 2n, 3n], ['a']);
    expect(() => builder.append(c, Uint32Array.of(0, 1, 2))).toThrow(/capacity/);
  });
});
