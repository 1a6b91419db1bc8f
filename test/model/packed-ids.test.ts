import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packedIdAt, packedIdEquals, packIds } from '../../src/model/packed-ids.ts';

// Well-formed strings (validation refuses lone surrogates), ASCII-heavy like real event ids.
const id = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
);

describe('packed event ids', () => {
  it('round-trip, and equality agrees with string equality', () => {
    fc.assert(
      fc.property(fc.array(id, { maxLength: 30 }), id, (ids, probe) => {
        const packed = packIds(ids);
        ids.forEach((s, i) => {
          expect(packedIdAt(packed, i)).toBe(s);
          expect(packedIdEquals(packed, i, s)).toBe(true);
          expect(packedIdEquals(packed, i, probe)).toBe(probe === s);
          // A prefix or an extension of an id is another id.
          expect(packedIdEquals(packed, i, s + 'x')).toBe(false);
          if (s.length > 1) expect(packedIdEquals(packed, i, s.slice(0, -1))).toBe(s.slice(0, -1) === s);
        });
      }),
    );
  });

  it('packs only the first `count` ids', () => {
    const packed = packIds(['a', 'é', 'c'], 2);
    expect(packed.ends).toEqual(Uint32Array.of(1, 3));
    expect(packedIdAt(packed, 1)).toBe('é');
  });
});
