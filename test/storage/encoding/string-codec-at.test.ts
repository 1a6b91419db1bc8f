import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeRadixStringBytes,
  decodeRadixStrings,
  decodeRadixStringsAt,
  decodeStringBytes,
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

  it('byte decoders give exactly the UTF-8 of the string decoders, for both codecs', () => {
    const utf8 = new TextEncoder();
    const packedAsStrings = (p: { bytes: Uint8Array; ends: Uint32Array }) =>
      Array.from(p.ends, (end, i) =>
        new TextDecoder().decode(p.bytes.subarray(i === 0 ? 0 : p.ends[i - 1], end)),
      );
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 12 }), { maxLength: 80 }),
        (values) => {
          const plain = decodeStringBytes(encodeStrings(values), values.length);
          expect(packedAsStrings(plain)).toEqual(values);
          expect(plain.bytes.length).toBe(values.reduce((n, v) => n + utf8.encode(v).length, 0));
          if (values.length === 0) return;
          const same = values.map((_, i) => `é${String(i % 10)}xy`);
          const radix = encodeRadixStrings(same) as Uint8Array[];
          expect(packedAsStrings(decodeRadixStringBytes(radix, same.length))).toEqual(same);
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
