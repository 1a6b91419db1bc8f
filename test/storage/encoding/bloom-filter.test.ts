import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hash128 } from '../../../src/model/hash.ts';
import { BloomFilter, uint32Mod } from '../../../src/storage/encoding/bloom-filter.ts';
import { DecodeError } from '../../../src/storage/encoding/varint.ts';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe('uint32Mod', () => {
  it('equals (x >>> 0) % m for every int32 x and 8 <= m <= 2^32 - 8 (persisted probe positions)', () => {
    const m = fc.oneof(
      fc.integer({ min: 8, max: 2 ** 30 + 8 }),
      fc.integer({ min: 2 ** 30 - 8, max: 2 ** 32 - 8 }),
      fc.constantFrom(8, 2 ** 30 - 1, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 8),
    );
    const x = fc.oneof(
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.constantFrom(-1, 0, 1, -(2 ** 31)),
    );
    fc.assert(
      fc.property(x, m, (xv, mv) => {
        expect(uint32Mod(xv, mv)).toBe((xv >>> 0) % mv);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('BloomFilter', () => {
  it('has no false negatives, before and after serialization', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(u32, u32), { maxLength: 300 }),
        fc.integer({ min: 1, max: 20 }),
        (keys, bitsPerKey) => {
          const f = BloomFilter.create(keys.length, bitsPerKey);
          for (const [h1, h2] of keys) f.add(h1, h2);
          const g = BloomFilter.fromBytes(f.toBytes());
          for (const [h1, h2] of keys) {
            expect(f.mayContain(h1, h2)).toBe(true);
            expect(g.mayContain(h1, h2)).toBe(true);
          }
          expect(g.bitCount).toBe(f.bitCount);
          expect(g.hashCount).toBe(f.hashCount);
        },
      ),
    );
  });

  it('chooses k = round(bitsPerKey * ln 2) clamped to 1..16 and whole bytes of bits', () => {
    expect(BloomFilter.create(1000, 8).hashCount).toBe(6);
    expect(BloomFilter.create(1000, 10).hashCount).toBe(7);
    expect(BloomFilter.create(1000, 0.5).hashCount).toBe(1);
    expect(BloomFilter.create(1000, 40).hashCount).toBe(16);
    expect(BloomFilter.create(1000, 8).bitCount).toBe(8000);
    expect(BloomFilter.create(0, 8).bitCount).toBe(8);
    expect(BloomFilter.create(3, 3).bitCount % 8).toBe(0);
    expect(BloomFilter.create(1000, 8).toBytes().length).toBe(5 + 1000);
  });

  it('has a false-positive rate near theory at 8 and 10 bits per key', () => {
    for (const bitsPerKey of [8, 10]) {
      const n = 20_000;
      const f = BloomFilter.create(n, bitsPerKey);
      for (let i = 0; i < n; i++) {
        const h = hash128(`evt_in_${i}`);
        f.add(h.h1, h.h2);
      }
      let falsePositives = 0;
      const probes = 50_000;
      for (let i = 0; i < probes; i++) {
        const h = hash128(`evt_out_${i}`);
        if (f.mayContain(h.h1, h.h2)) falsePositives++;
      }
      const k = f.hashCount;
      const theory = (1 - Math.exp((-k * n) / f.bitCount)) ** k;
      const rate = falsePositives / probes;
      expect(rate).toBeGreaterThan(theory * 0.75);
      expect(rate).toBeLessThan(theory * 1.25);
    }
  });

  it('rejects malformed serialized filters', () => {
    const good = BloomFilter.create(10, 8).toBytes();
    expect(() => BloomFilter.fromBytes(good.subarray(0, 3))).toThrow(DecodeError);
    expect(() => BloomFilter.fromBytes(good.subarray(0, good.length - 1))).toThrow(DecodeError);
    const badK = Uint8Array.from(good);
    badK[0] = 0;
    expect(() => BloomFilter.fromBytes(badK)).toThrow(/hash count/);
    const badBits = Uint8Array.from(good);
    badBits[1] = 7;
    expect(() => BloomFilter.fromBytes(badBits)).toThrow(DecodeError);
  });

  it('rejects bad parameters', () => {
    expect(() => BloomFilter.create(-1, 8)).toThrow(RangeError);
    expect(() => BloomFilter.create(10, 0)).toThrow(RangeError);
  });
});
