/**
 * A compact form for the dictionary of canonical dimension sets ('{"region":"eu","tier":"batch"}'):
 * instead of the JSON text, the distinct keys, each key's distinct values, and per set one code
 * per key (0 = absent, else 1 + value index), stored key by key so the codes compress. Sets are
 * rebuilt by the one canonical serializer, so it is used only when every value round-trips
 * through it byte for byte; otherwise the caller stores plain strings.
 *
 * Layout: varint set count, front-coded keys, per key front-coded values, per key per set a
 * varint code.
 *
 * Invariants:
 * - readDimensionDict(writeDimensionDict(parseCanonicalMaps(v))) equals v exactly;
 * - keys inside a set are strictly ascending by JS string order.
 */

import { readFrontCoded, writeFrontCoded } from './string-codec.ts';
import { type ByteReader, type ByteWriter, DecodeError } from './varint.ts';

export type Pairs = [string, string][];

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The canonical JSON of a key-sorted string map. */
export function canonicalMapJson(pairs: Pairs): string {
  let out = '{';
  for (let i = 0; i < pairs.length; i++) {
    if (i > 0) out += ',';
    out += `${JSON.stringify(pairs[i][0])}:${JSON.stringify(pairs[i][1])}`;
  }
  return `${out}}`;
}

/** Each value as key-sorted pairs, or null if any value is not exactly canonical JSON of a string map. */
export function parseCanonicalMaps(values: readonly string[]): Pairs[] | null {
  const out: Pairs[] = [];
  for (const text of values) {
    if (text.charCodeAt(0) !== 0x7b /* { */) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return null;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
    const map = parsed as Record<string, unknown>;
    const pairs: Pairs = [];
    for (const key of Object.keys(map).sort(compareStrings)) {
      const value = map[key];
      if (typeof value !== 'string') return null;
      pairs.push([key, value]);
    }
    if (canonicalMapJson(pairs) !== text) return null;
    out.push(pairs);
  }
  return out;
}

export function writeDimensionDict(w: ByteWriter, sets: readonly Pairs[]): void {
  const valuesByKey = new Map<string, Set<string>>();
  for (const pairs of sets) {
    for (const [k, v] of pairs) {
      let values = valuesByKey.get(k);
      if (values === undefined) {
        values = new Set();
        valuesByKey.set(k, values);
      }
      values.add(v);
    }
  }
  const keys = [...valuesByKey.keys()].sort(compareStrings);
  const sortedValues = keys.map((k) => [...(valuesByKey.get(k) as Set<string>)].sort(compareStrings));
  w.writeVarUint(sets.length);
  writeFrontCoded(w, keys);
  for (const values of sortedValues) writeFrontCoded(w, values);
  keys.forEach((key, k) => {
    const index = new Map<string, number>();
    for (let i = 0; i < sortedValues[k].length; i++) index.set(sortedValues[k][i], i + 1);
    for (const pairs of sets) {
      const pair = pairs.find((p) => p[0] === key);
      w.writeVarUint(pair === undefined ? 0 : (index.get(pair[1]) as number));
    }
  });
}

export function readDimensionDict(r: ByteReader, countMax: number): string[] {
  const setCount = r.readVarUint();
  if (setCount > countMax)
    throw new DecodeError(`dimension dict: ${setCount} sets, at most ${countMax} expected`);
  const keys = readFrontCoded(r, r.remaining);
  const valuesByKey = keys.map(() => readFrontCoded(r, r.remaining));
  const sets: Pairs[] = Array.from({ length: setCount }, () => []);
  for (let k = 0; k < keys.length; k++) {
    if (k > 0 && !(keys[k - 1] < keys[k])) throw new DecodeError('dimension dict: keys out of order');
    const values = valuesByKey[k];
    for (let s = 0; s < setCount; s++) {
      const code = r.readVarUint();
      if (code > values.length)
        throw new DecodeError(`dimension dict: code ${code} beyond ${values.length} values`);
      if (code > 0) sets[s].push([keys[k], values[code - 1]]);
    }
  }
  return sets.map(canonicalMapJson);
}
