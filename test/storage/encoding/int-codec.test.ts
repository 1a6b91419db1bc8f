import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BitReader, BitWriter } from '../../../src/storage/encoding/bits.ts';
import {
  BitClassWriter,
  decodeBitClassInto,
  decodeDeltaBitClassInto,
  decodePlanesAt,
  decodePlanesInto,
  decodeRunsAt,
  decodeRunsInto,
  decodeValueDictInto,
  encodeDeltaBitClass,
  encodePlanes,
  encodeRuns,
  encodeValueDict,
} from '../../../src/storage/encoding/int-codec.ts';
import { DecodeError } from '../../../src/storage/encoding/varint.ts';

const SAFE = Number.MAX_SAFE_INTEGER;
const u32 = fc.oneof(
  fc.integer({ min: 0, max: 5 }),
  fc.integer({ min: 0, max: 300 }),
  fc.integer({ min: 0, max: 0xffffffff }),
);
/** Runs of repeated values, like sorted key columns. */
const runny = fc
  .array(fc.tuple(u32, fc.integer({ min: 1, max: 20 })), { maxLength: 30 })
  .map((runs) => runs.flatMap(([v, n]) => Array<number>(n).fill(v)));
const nonNegSafe = fc.oneof(
  fc.integer({ min: 0, max: 100 }),
  fc.maxSafeNat(),
  fc.constantFrom(0, 1, 2, SAFE, SAFE - 1, 2 ** 31, 2 ** 52, 1_747_000_000_000),
);

describe('bits', () => {
  it('round-trips any sequence of (value, width) writes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc
            .integer({ min: 0, max: 53 })
            .chain((n) =>
              fc.tuple(fc.constant(n), n === 0 ? fc.constant(0) : fc.integer({ min: 0, max: 2 ** n - 1 })),
            ),
        ),
        (items) => {
          const w = new BitWriter(1);
          for (const [n, v] of items) w.writeWide(v, n);
          const r = new BitReader(w.finish());
          for (const [n, v] of items) expect(r.readWide(n)).toBe(v);
          expect(r.remainingBytes).toBe(0);
        },
      ),
    );
    expect(() => new BitReader(new Uint8Array(1)).readBits(9)).toThrow(DecodeError);
  });
});

describe('runs and planes', () => {
  it('round-trip any u32 values', () => {
    fc.assert(
      fc.property(fc.oneof(runny, fc.array(u32, { maxLength: 100 })), (values) => {
        const input = Uint32Array.from(values);
        for (const [encode, decode] of [
          [encodeRuns, decodeRunsInto],
          [encodePlanes, decodePlanesInto],
        ] as const) {
          const out = new Uint32Array(input.length);
          decode(encode(input), out, 2 ** 32);
          expect(out).toEqual(input);
        }
      }),
    );
  });

  it('give at any row the value the whole decode gives, null shift included', () => {
    fc.assert(
      fc.property(fc.oneof(runny, fc.array(u32, { maxLength: 100 })), fc.boolean(), (values, nullShift) => {
        const input = Uint32Array.from(values);
        for (const [encode, decodeAll, decodeAt] of [
          [encodeRuns, decodeRunsInto, decodeRunsAt],
          [encodePlanes, decodePlanesInto, decodePlanesAt],
        ] as const) {
          const streams = encode(input);
          const all = new Uint32Array(input.length);
          decodeAll(streams, all, 2 ** 32, nullShift);
          for (let row = 0; row < input.length; row++)
            expect(decodeAt(streams, input.length, row, 2 ** 32, nullShift)).toBe(all[row]);
          expect(() => decodeAt(streams, input.length, input.length, 2 ** 32)).toThrow(RangeError);
          expect(() => decodeAt(streams, input.length, -1, 2 ** 32)).toThrow(RangeError);
        }
      }),
    );
  });

  it('point reads refuse values over the limit and streams of another length', () => {
    const runs = encodeRuns(Uint32Array.of(1, 1, 5));
    expect(decodeRunsAt(runs, 3, 1, 5)).toBe(1);
    expect(() => decodeRunsAt(runs, 3, 2, 5)).toThrow(/not below 5/);
    // Only the runs up to the row are read: a run longer than the block is seen when crossed.
    expect(() => decodeRunsAt(runs, 1, 0, 6)).toThrow(DecodeError);
    const planes = encodePlanes(Uint32Array.of(1, 70_000));
    expect(decodePlanesAt(planes, 2, 1, 2 ** 32)).toBe(70_000);
    expect(() => decodePlanesAt(planes, 2, 1, 70_000)).toThrow(/not below 70000/);
    expect(() => decodePlanesAt(planes, 3, 0, 2 ** 32)).toThrow(DecodeError);
  });

  it('round-trip into Uint8Array (kind)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 100 }), (values) => {
        const input = Uint8Array.from(values);
        const a = new Uint8Array(input.length);
        decodeRunsInto(encodeRuns(input), a, 3);
        const b = new Uint8Array(input.length);
        decodePlanesInto(encodePlanes(input), b, 3);
        expect(a).toEqual(input);
        expect(b).toEqual(input);
      }),
    );
  });

  it('runs shrink sorted columns to a few bytes', () => {
    const sorted = Uint32Array.from({ length: 4096 }, (_, i) => Math.floor(i / 300));
    const [values, runs] = encodeRuns(sorted);
    expect(values.length + runs.length).toBeLessThan(14 * 3 + 1); // 14 runs of (1-byte value, 2-byte length)
  });

  it('reject values at or over the limit and inconsistent lengths', () => {
    expect(() => decodeRunsInto(encodeRuns(Uint32Array.of(1, 5)), new Uint32Array(2), 5)).toThrow(
      /not below 5/,
    );
    expect(() => decodePlanesInto(encodePlanes(Uint32Array.of(1, 5)), new Uint32Array(2), 5)).toThrow(
      /not below 5/,
    );
    expect(() => decodeRunsInto(encodeRuns(Uint32Array.of(1, 1, 1)), new Uint32Array(2), 5)).toThrow(
      DecodeError,
    );
    expect(() => decodePlanesInto(encodePlanes(Uint32Array.of(1, 1, 1)), new Uint32Array(2), 5)).toThrow(
      DecodeError,
    );
  });
});

describe('bit-class', () => {
  it('round-trips any safe integers (plain)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.maxSafeInteger(),
            fc.integer({ min: -300, max: 300 }),
            fc.constantFrom(SAFE, -SAFE, 0, 1, -1, 2 ** 31, -(2 ** 31)),
          ),
          { maxLength: 200 },
        ),
        (values) => {
          const w = new BitClassWriter(values.length);
          for (const v of values) w.put(v);
          const [classes, mantissas] = w.finish();
          const out = new Float64Array(values.length);
          decodeBitClassInto(classes, mantissas, out, false, null);
          expect(Array.from(out)).toEqual(values.map((v) => v + 0)); // -0 never produced
        },
      ),
    );
  });

  it('delta form round-trips non-negative safe integers (timestamps), any order', () => {
    fc.assert(
      fc.property(fc.array(nonNegSafe, { maxLength: 200 }), (values) => {
        const input = Float64Array.from(values);
        const out = new Float64Array(input.length);
        decodeDeltaBitClassInto(encodeDeltaBitClass(input), out);
        expect(out).toEqual(input);
      }),
    );
  });

  it('costs about the bit length of each delta', () => {
    const ts = Float64Array.from({ length: 4096 }, (_, i) => 1_747_000_000_000 + i * 1000 + (i % 7));
    const [classes, mantissas] = encodeDeltaBitClass(ts);
    expect(classes.length).toBe(4096);
    expect(mantissas.length).toBeLessThan(4096 * 1.3); // ~10 bits of mantissa per delta of ~1000
  });

  it('rejects bad class bytes and leftover mantissas', () => {
    const out = new Float64Array(1);
    expect(() => decodeBitClassInto(Uint8Array.of(60), new Uint8Array(8), out, false, null)).toThrow(
      /bad class/,
    );
    expect(() => decodeBitClassInto(Uint8Array.of(255), new Uint8Array(0), out, false, null)).toThrow(
      /bad class/,
    );
    expect(() => decodeBitClassInto(Uint8Array.of(1), new Uint8Array(1), out, false, null)).toThrow(/left/);
    expect(() => decodeBitClassInto(Uint8Array.of(20), new Uint8Array(1), out, false, null)).toThrow(
      DecodeError,
    );
  });
});

describe('value dict', () => {
  it('round-trips non-negative safe integers', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(nonNegSafe, fc.constantFrom(5, 6, 7)), { maxLength: 200 }), (values) => {
        const input = Float64Array.from(values);
        const streams = encodeValueDict(input);
        expect(streams).not.toBeNull();
        const out = new Float64Array(input.length);
        decodeValueDictInto(streams as Uint8Array[], out);
        expect(out).toEqual(input);
      }),
    );
  });

  it('gives up past distinctMax', () => {
    expect(encodeValueDict(Float64Array.of(1, 2, 3), 2)).toBeNull();
    expect(encodeValueDict(Float64Array.of(1, 2, 2, 1), 2)).not.toBeNull();
  });
});
