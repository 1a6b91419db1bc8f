import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cCombine } from '../../../src/storage/encoding/crc32c.ts';

/** Bit-at-a-time reference: slow and obviously right. */
function crc32cReference(data: Uint8Array, initial = 0): number {
  let crc = ~initial >>> 0;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check values', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('equals the bitwise reference on any bytes (all slice-by-8 alignments)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (data, initial) => {
          expect(crc32c(data, initial)).toBe(crc32cReference(data, initial));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('equals the reference on views at every byte offset (the aligned 32-bit word path)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 400 }), fc.nat(7), (data, offset) => {
        const view = data.subarray(Math.min(offset, data.length));
        expect(crc32c(view)).toBe(crc32cReference(view, 0));
      }),
      { numRuns: 300 },
    );
  });

  it('chains: crc32c(b, crc32c(a)) === crc32c(a + b)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
        const ab = new Uint8Array(a.length + b.length);
        ab.set(a);
        ab.set(b, a.length);
        expect(crc32c(b, crc32c(a))).toBe(crc32c(ab));
      }),
    );
  });

  it('combines: crc32cCombine(crc32c(a), crc32c(b), b.length) === crc32c(a + b)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        const ab = new Uint8Array(a.length + b.length);
        ab.set(a);
        ab.set(b, a.length);
        expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(ab));
      }),
      { numRuns: 300 },
    );
    // A longer second part: 70,000 zero bytes.
    const zeros = new Uint8Array(70_000);
    const head = Uint8Array.of(1, 2, 3);
    const whole = new Uint8Array(head.length + zeros.length);
    whole.set(head);
    expect(crc32cCombine(crc32c(head), crc32c(zeros), zeros.length)).toBe(crc32c(whole));
  });

  it('returns an unsigned 32-bit integer and works on subarray views', () => {
    const big = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131) & 0xff);
    const view = big.subarray(3, 997);
    const crc = crc32c(view);
    expect(crc).toBeGreaterThanOrEqual(0);
    expect(crc).toBeLessThanOrEqual(0xffffffff);
    expect(crc).toBe(crc32cReference(Uint8Array.from(view)));
  });
});
