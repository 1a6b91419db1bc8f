import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../src/storage/encoding/varint.ts';
import { zstdCompress, zstdDecompress } from '../../../src/storage/encoding/zstd.ts';

describe('zstd (magicless frames)', () => {
  it('round-trips any bytes at several levels', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.constantFrom(1, 3, 9, 19), (data, level) => {
        expect(zstdDecompress(zstdCompress(data, level))).toEqual(Buffer.from(data));
      }),
      { numRuns: 50 },
    );
  });

  it('strips the 4-byte magic', () => {
    const frame = zstdCompress(new Uint8Array(1000), 3);
    expect(frame[0]).not.toBe(0x28);
    expect(frame.length).toBeLessThan(20);
  });

  it('throws DecodeError on a damaged frame and RangeError on a bad level', () => {
    expect(() => zstdDecompress(Uint8Array.of(1, 2, 3, 4, 5))).toThrow(DecodeError);
    expect(() => zstdCompress(new Uint8Array(1), 0)).toThrow(RangeError);
    expect(() => zstdCompress(new Uint8Array(1), 23)).toThrow(RangeError);
  });
});
