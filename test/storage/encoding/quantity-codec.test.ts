import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type QuantityColumn, quantityAt } from '../../../src/model/columns.ts';
import { decodeQuantitiesInto, encodeQuantities } from '../../../src/storage/encoding/quantity-codec.ts';
import { BIG_ABS_MAX } from '../../../src/storage/encoding/varint.ts';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const EXTREME_QUANTITIES: bigint[] = [
  0n,
  1n,
  -1n,
  BIG_ABS_MAX,
  -BIG_ABS_MAX,
  SAFE,
  -SAFE,
  SAFE + 1n, // 2^53
  -(SAFE + 1n),
  2n ** 63n,
  -(2n ** 63n),
  2n ** 64n,
  -(2n ** 64n),
  2n ** 64n - 1n,
];

const quantity = fc.oneof(
  fc.constantFrom(...EXTREME_QUANTITIES),
  fc.bigInt({ min: -BIG_ABS_MAX, max: BIG_ABS_MAX }),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.integer({ min: 0, max: 100_000 }).map(BigInt),
  fc.maxSafeInteger().map(BigInt),
);

/** The QuantityColumn form: a number when safe, else NaN + big. */
function quantityColumn(values: readonly bigint[]): QuantityColumn {
  const col: QuantityColumn = { values: new Float64Array(values.length), big: null };
  values.forEach((q, i) => {
    if (q >= -SAFE && q <= SAFE) {
      col.values[i] = Number(q);
      return;
    }
    col.values[i] = Number.NaN;
    col.big ??= new Map();
    col.big.set(i, q);
  });
  return col;
}

function decodeAll(col: QuantityColumn, start: number, end: number): QuantityColumn {
  const out: QuantityColumn = { values: new Float64Array(end - start), big: new Map() };
  decodeQuantitiesInto(
    encodeQuantities(col, start, end),
    out.values,
    0,
    end - start,
    out.big as Map<number, bigint>,
  );
  return out;
}

describe('quantity codec', () => {
  it('round-trips exactly, including every extreme and random bigints in range', () => {
    fc.assert(
      fc.property(fc.array(quantity, { maxLength: 80 }), (values) => {
        const col = quantityColumn(values);
        const out = decodeAll(col, 0, values.length);
        for (let i = 0; i < values.length; i++) {
          const got = quantityAt(out, i);
          expect(typeof got === 'bigint' ? got : BigInt(got)).toBe(values[i]);
          // Safe values come back as numbers, never as NaN + big.
          expect(Number.isNaN(out.values[i])).toBe(values[i] > SAFE || values[i] < -SAFE);
        }
      }),
    );
  });

  it('every extreme survives on its own', () => {
    for (const q of EXTREME_QUANTITIES) {
      const out = decodeAll(quantityColumn([q]), 0, 1);
      const got = quantityAt(out, 0);
      expect(typeof got === 'bigint' ? got : BigInt(got)).toBe(q);
    }
  });

  it('decodes a sub-range at an offset with row indexes of the output', () => {
    const values = [5n, 2n ** 64n, 7n, -(2n ** 63n)];
    const col = quantityColumn(values);
    const out: QuantityColumn = { values: new Float64Array(10), big: new Map() };
    decodeQuantitiesInto(encodeQuantities(col, 1, 4), out.values, 6, 3, out.big as Map<number, bigint>);
    expect(out.big?.get(6)).toBe(2n ** 64n);
    expect(out.values[7]).toBe(7);
    expect(out.big?.get(8)).toBe(-(2n ** 63n));
  });

  it('normalises a big value inside the safe range to a number', () => {
    const col: QuantityColumn = { values: Float64Array.of(Number.NaN), big: new Map([[0, 42n]]) };
    const out = decodeAll(col, 0, 1);
    expect(out.values[0]).toBe(42);
    expect(out.big?.size).toBe(0);
  });

  it('rejects values outside the contract', () => {
    expect(() => encodeQuantities({ values: Float64Array.of(1.5), big: null }, 0, 1)).toThrow(RangeError);
    expect(() => encodeQuantities({ values: Float64Array.of(2 ** 60), big: null }, 0, 1)).toThrow(RangeError);
    expect(() => encodeQuantities({ values: Float64Array.of(Number.NaN), big: null }, 0, 1)).toThrow(
      /no big value/,
    );
    expect(() =>
      encodeQuantities({ values: Float64Array.of(Number.NaN), big: new Map([[0, BIG_ABS_MAX + 1n]]) }, 0, 1),
    ).toThrow(/10\^38/);
  });

  it('small quantities cost about a byte', () => {
    const values = Array.from({ length: 4096 }, (_, i) => BigInt((i * 7919) % 1000));
    const streams = encodeQuantities(quantityColumn(values), 0, values.length);
    expect(streams[0].length + streams[1].length + streams[2].length).toBeLessThan(4096 * 2);
  });
});
