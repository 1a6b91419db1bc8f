import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeNullableStrings,
  decodeRadixStrings,
  decodeRadixStringsAt,
  decodeStrings,
  encodeNullableStrings,
  encodeRadixStrings,
  encodeStrings,
  readFrontCoded,
  writeFrontCoded,
} from '../../../src/storage/encoding/string-codec.ts';
import { ByteReader, ByteWriter, DecodeError } from '../../../src/storage/encoding/varint.ts';

const anyString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
);
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const base62Id = fc
  .array(fc.constantFrom(...BASE62), { minLength: 20, maxLength: 20 })
  .map((cs) => `evt_${cs.join('')}`);

/** Equal-length ids from a random alphabet (possibly non-ASCII), a random template of constants. */
const sameLengthIds = fc
  .record({
    alphabet: fc.uniqueArray(
      fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), fc.constantFrom('é', '€', 'ß')),
      { minLength: 1, maxLength: 70 },
    ),
    template: fc.array(fc.option(fc.constantFrom('-', '_', 'x', 'ü'), { nil: null }), {
      minLength: 1,
      maxLength: 40,
    }),
    count: fc.integer({ min: 1, max: 60 }),
    seed: fc.integer(),
  })
  .map(({ alphabet, template, count, seed }) => {
    // Same byte length needs same-width characters: keep one UTF-8 width in the alphabet.
    const width = Buffer.byteLength(alphabet[0]);
    const letters = alphabet.filter((c) => Buffer.byteLength(c) === width);
    let s = seed >>> 0;
    const next = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s;
    };
    return Array.from({ length: count }, () =>
      template.map((c) => c ?? letters[next() % letters.length]).join(''),
    );
  });

describe('strings', () => {
  it('round-trip any strings (ASCII and not)', () => {
    fc.assert(
      fc.property(fc.array(anyString, { maxLength: 50 }), (values) => {
        expect(decodeStrings(encodeStrings(values), values.length)).toEqual(values);
      }),
    );
  });

  it('keep a leading U+FEFF in every codec', () => {
    const values = ['\uFEFF', '\uFEFFx', 'a\uFEFF'];
    expect(decodeStrings(encodeStrings(values), 3)).toEqual(values);
    expect(decodeNullableStrings(encodeNullableStrings([null, ...values]), 4)).toEqual([null, ...values]);
    const same = ['\uFEFFa', '\uFEFFb'];
    expect(decodeRadixStrings(encodeRadixStrings(same) as Uint8Array[], 2)).toEqual(same);
    const w = new ByteWriter();
    writeFrontCoded(w, values);
    expect(readFrontCoded(new ByteReader(w.finish()), 3)).toEqual(values);
  });

  it('reject a lone surrogate (UTF-8 cannot carry it)', () => {
    expect(() => encodeStrings(['ok', 'bad\uD800'])).toThrow(/lone surrogate/);
    expect(() => encodeRadixStrings(['a\uDC00'])).toThrow(/lone surrogate/);
    expect(encodeStrings(['pair \uD83D\uDE00 ok'])).toHaveLength(2);
  });

  it('detect inconsistent lengths', () => {
    const [lengths, bytes] = encodeStrings(['abc', 'de']);
    expect(() => decodeStrings([lengths, bytes.subarray(1)], 2)).toThrow(DecodeError);
    expect(() => decodeStrings([lengths, bytes], 3)).toThrow(DecodeError);
  });
});

describe('nullable strings', () => {
  it('round-trip any mix of nulls and strings', () => {
    fc.assert(
      fc.property(fc.array(fc.option(anyString, { nil: null, freq: 2 }), { maxLength: 60 }), (values) => {
        expect(decodeNullableStrings(encodeNullableStrings(values), values.length)).toEqual(values);
      }),
    );
  });

  it('all-null columns cost a couple of bytes', () => {
    const streams = encodeNullableStrings(Array<null>(4096).fill(null));
    expect(streams.reduce((n, s) => n + s.length, 0)).toBeLessThanOrEqual(4);
  });
});

describe('radix strings', () => {
  it('round-trip base62 ids at 15 bytes each (4 x 30 bits)', () => {
    fc.assert(
      fc.property(fc.array(base62Id, { minLength: 1, maxLength: 100 }), (ids) => {
        const streams = encodeRadixStrings(ids);
        expect(streams).not.toBeNull();
        const [header, packed] = streams as Uint8Array[];
        expect(decodeRadixStrings([header, packed], ids.length)).toEqual(ids);
        // The alphabet seen may be smaller than 62: never more than 15 bytes per id.
        expect(packed.length).toBeLessThanOrEqual(15 * ids.length);
      }),
    );
  });

  it('round-trip UUIDs and arbitrary equal-length ids (constants, any alphabet, multi-byte)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(fc.uuid(), { minLength: 1, maxLength: 50 }), sameLengthIds), (ids) => {
        const streams = encodeRadixStrings(ids);
        if (streams === null) {
          // Only unequal byte lengths fall back.
          expect(new Set(ids.map((s) => Buffer.byteLength(s))).size).toBeGreaterThan(1);
          return;
        }
        expect(decodeRadixStrings(streams, ids.length)).toEqual(ids);
      }),
    );
  });

  it('decodes large chunks (two digits per division) as the one-value-at-a-time path does', () => {
    const manyIds = (ids: fc.Arbitrary<string[]>) =>
      fc
        .tuple(ids, fc.integer({ min: 256, max: 700 }))
        .map(([some, n]) => Array.from({ length: n }, (_, i) => some[i % some.length]));
    fc.assert(
      fc.property(
        fc.oneof(manyIds(fc.array(base62Id, { minLength: 1, maxLength: 40 })), manyIds(sameLengthIds)),
        (ids) => {
          const streams = encodeRadixStrings(ids);
          if (streams === null) return;
          expect(decodeRadixStrings(streams, ids.length)).toEqual(ids);
          const rows = ids.map((_, i) => i);
          expect(decodeRadixStringsAt(streams, ids.length, rows)).toEqual(ids);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('rejects a packed value beyond the radix range in a large chunk too', () => {
    const ids = Array.from({ length: 300 }, (_, i) => ['ab', 'bc', 'ca'][i % 3]);
    const [header, packed] = encodeRadixStrings(ids) as Uint8Array[];
    const damaged = packed.slice();
    damaged[damaged.length - 1] = 0xff;
    expect(() => decodeRadixStrings([header, damaged], ids.length)).toThrow(/radix range/);
  });

  it('packs UUIDs into ~16 bytes (variable hex positions only)', () => {
    const ids = Array.from({ length: 1000 }, () => crypto.randomUUID());
    const streams = encodeRadixStrings(ids) as Uint8Array[];
    expect(streams[1].length / ids.length).toBeLessThanOrEqual(16);
  });

  it('returns null for unequal lengths and no values', () => {
    expect(encodeRadixStrings(['a', 'bb'])).toBeNull();
    expect(encodeRadixStrings([])).toBeNull();
  });

  it('rejects a packed value beyond the radix range', () => {
    const [header] = encodeRadixStrings(['ab', 'ba']) as Uint8Array[];
    // Alphabet {a, b}, two variable positions: values 0..3 fit 2 bits; all-ones decodes to 3, fine;
    // so use a three-letter alphabet (9 values in 4 bits) and write 15.
    const [header3] = encodeRadixStrings(['ab', 'bc', 'ca']) as Uint8Array[];
    expect(decodeRadixStrings([header, Uint8Array.of(0xff)], 2)).toEqual(['bb', 'bb']);
    expect(() => decodeRadixStrings([header3, Uint8Array.of(0xff)], 2)).toThrow(/radix range/);
  });
});

describe('front coding', () => {
  it('round-trips any list of strings', () => {
    fc.assert(
      fc.property(fc.array(anyString, { maxLength: 40 }), fc.boolean(), (values, sort) => {
        const list = sort ? [...values].sort() : values;
        const w = new ByteWriter();
        writeFrontCoded(w, list);
        const r = new ByteReader(w.finish());
        expect(readFrontCoded(r, list.length)).toEqual(list);
        expect(r.atEnd()).toBe(true);
      }),
    );
  });

  it('shares prefixes of sorted values', () => {
    const models = Array.from({ length: 50 }, (_, i) => `claude-sonnet-2025-${String(i).padStart(4, '0')}`);
    const w = new ByteWriter();
    writeFrontCoded(w, models);
    expect(w.finish().length).toBeLessThan(50 * 6);
  });

  it('rejects a count beyond the bound', () => {
    const w = new ByteWriter();
    writeFrontCoded(w, ['a', 'b', 'c']);
    expect(() => readFrontCoded(new ByteReader(w.finish()), 2)).toThrow(DecodeError);
  });
});
