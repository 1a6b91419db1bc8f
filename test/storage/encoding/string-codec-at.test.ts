import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeRadixStrings,
  decodeRadixStringsAt,
  decodeStrings,
  decodeStringsAt,
  encodeRadixStrings,
  encodeStrings,
} from '../../../src/storage/encoding/string-codec.ts';

/** Some rows of `n`, in any order, repeats allowed. */
const rowsOf = (n: number) => fc.array(fc.integer({ min: 0, max: n - 1 }), { maxLength: 40 });

describe('decoding chosen rows of a string chunk', () => {
  it('radix strings: the chosen rows equal the full decode at those rows', () => {
    const ids = fc.array(fc.stringMatching(/^evt_[0-9A-Za-z]{20}$/), { minLength: 1, maxLength: 300 });
    fc.assert(
      fc.property(
        ids.chain((values) => fc.tuple(fc.constant(values), rowsOf(values.length))),
        ([values, rows]) => {
          const streams = encodeRadixStrings(values);
          expect(streams).not.toBeNull();
          const s = streams as Uint8Array[];
          const all = decodeRadixStrings(s, values.length);
          expect(decodeRadixStringsAt(s, values.length, rows)).toEqual(rows.map((r) => all[r]));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('radix strings with non-ASCII bytes and plain strings of any length', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 12 }), {
          minLength: 1,
          maxLength: 80,
        }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (values, picks) => {
          const rows = picks.map((p) => p % values.length);
          const plain = encodeStrings(values);
          expect(decodeStringsAt(plain, values.length, rows)).toEqual(rows.map((r) => values[r]));
          expect(decodeStrings(plain, values.length)).toEqual(values);
          const same = values.map((v, i) => `é${String(i % 10)}${'x'.repeat(3)}`);
          const radix = encodeRadixStrings(same) as Uint8Array[];
          expect(decodeRadixStringsAt(radix, same.length, rows)).toEqual(rows.map((r) => same[r]));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('rejects rows outside the chunk', () => {
    const streams = encodeRadixStrings(['evt_a', 'evt_b']) as Uint8Array[];
    expect(() => decodeRadixStringsAt(streams, 2, [2])).toThrow(RangeError);
    expect(() => decodeStringsAt(encodeStrings(['a']), 1, [-1])).toThrow(RangeError);
  });
});
