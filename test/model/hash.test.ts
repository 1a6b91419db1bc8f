import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hash128BytesInto, hash128Into } from '../../src/model/hash.ts';

describe('hash128BytesInto', () => {
  it('gives the words hash128Into gives the string, ASCII or not', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.nat(8), (text, pad) => {
        const bytes = encoder.encode(text);
        // At an offset inside a larger buffer, as stored ids are.
        const buffer = new Uint8Array(pad + bytes.length + 3).fill(0x41);
        buffer.set(bytes, pad);
        const fromBytes = new Uint32Array(4);
        const fromText = new Uint32Array(4);
        hash128BytesInto(buffer, pad, pad + bytes.length, fromBytes);
        hash128Into(text, fromText);
        expect([...fromBytes]).toEqual([...fromText]);
      }),
      { numRuns: 500 },
    );
  });
});
