import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalMapJson,
  parseCanonicalMaps,
  readDimensionDict,
  writeDimensionDict,
} from '../../../src/storage/encoding/dimension-dict.ts';
import { ByteReader, ByteWriter } from '../../../src/storage/encoding/varint.ts';

const canonical = fc
  .dictionary(
    fc.oneof(
      fc.constantFrom('region', 'tier', 'env', '10', '9', 'a"b'),
      fc.string({ minLength: 1, maxLength: 6 }),
    ),
    fc.oneof(
      fc.constantFrom('eu', 'us', 'prod'),
      fc.string({ maxLength: 8 }),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
    { maxKeys: 5 },
  )
  .map((map) =>
    canonicalMapJson(
      Object.keys(map)
        .sort()
        .map((k) => [k, map[k]]),
    ),
  );

function roundTrip(values: string[]): string[] | null {
  const maps = parseCanonicalMaps(values);
  if (maps === null) return null;
  const w = new ByteWriter();
  writeDimensionDict(w, maps);
  const r = new ByteReader(w.finish());
  const out = readDimensionDict(r, values.length);
  expect(r.atEnd()).toBe(true);
  return out;
}

describe('dimension dict', () => {
  it('round-trips any list of canonical maps exactly (including numeric-looking keys and escapes)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(canonical, { maxLength: 40 }), (values) => {
        const sorted = [...values].sort();
        expect(roundTrip(sorted)).toEqual(sorted);
      }),
    );
  });

  it('refuses anything that is not byte-for-byte canonical, so the caller stores strings', () => {
    expect(parseCanonicalMaps(['{"b":"1","a":"2"}'])).toBeNull(); // keys not sorted
    expect(parseCanonicalMaps(['{"a": "1"}'])).toBeNull(); // whitespace
    expect(parseCanonicalMaps(['{"a":1}'])).toBeNull(); // not a string value
    expect(parseCanonicalMaps(['[]'])).toBeNull();
    expect(parseCanonicalMaps(['{"a":"1","a":"2"}'])).toBeNull(); // duplicate key
    expect(parseCanonicalMaps(['not json'])).toBeNull();
    expect(parseCanonicalMaps(['{"a":"\\u0041"}'])).toBeNull(); // escaped differently than JSON.stringify
    expect(roundTrip(['{}', '{"10":"x","9":"y"}'])).toEqual(['{}', '{"10":"x","9":"y"}']);
  });

  it('stores realistic sets in a few bytes each', () => {
    const values: string[] = [];
    for (const region of ['', 'ap', 'eu', 'us']) {
      for (const tier of ['', 'batch', 'priority', 'standard']) {
        const pairs: [string, string][] = [];
        if (region) pairs.push(['region', region]);
        if (tier) pairs.push(['tier', tier]);
        values.push(canonicalMapJson(pairs));
      }
    }
    values.sort();
    const w = new ByteWriter();
    writeDimensionDict(w, parseCanonicalMaps(values) ?? []);
    expect(w.finish().length).toBeLessThan(values.join('').length / 4);
  });
});
