/**
 * String column codecs (UTF-8 bytes; decoded back to identical JS strings):
 *
 * - strings:          stream 0 = u8 flags (bit 0: all ASCII) + varint byte length per value,
 *                     stream 1 = the concatenated bytes. The general form for any strings.
 * - nullable strings: stream 0 = alternating run lengths of nulls and non-nulls (a null run
 *                     first, possibly empty), then the two `strings` streams of the non-nulls.
 * - radix strings:    for equal-length values (random ids: `evt_` + base62, UUIDs, hex): every
 *                     byte position is constant or draws from one shared alphabet; the variable
 *                     positions are cut into groups whose radix^digits stays within 2^31, and
 *                     each group is one integer of ceil(log2(radix^digits)) bits, bit-packed.
 *                     20 base62 chars cost 4 x 30 = 120 bits: within one bit of their entropy.
 * - front coding:     sorted dictionaries (varint shared-prefix bytes, suffix); used in footers.
 *
 * Invariants:
 * - decode(encode(values)) equals values exactly (strings must be well-formed UTF-16: a lone
 *   surrogate would not survive UTF-8, so encoders reject it);
 * - decoders validate lengths and bit widths and throw DecodeError, never return a guess.
 */

import type { PackedIds } from '../../model/packed-ids.ts';
import { BitReader, BitWriter } from './bits.ts';
import type { Streams } from './int-codec.ts';
import { ByteReader, ByteWriter, DecodeError, decodeUtf8, utf8Length } from './varint.ts';

const FLAG_ASCII = 1;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Radix packing is for ids; longer equal-length values go through `strings`. */
const RADIX_VALUE_BYTES_MAX = 1024;
/** A group of digits is one integer below 2^31: int32 arithmetic, and at most a bit of slack per group. */
const RADIX_GROUP_MAX = 2 ** 31;

function expectStreams(streams: Streams, count: number, codec: string): void {
  if (streams.length !== count)
    throw new DecodeError(`${codec}: ${streams.length} streams, expected ${count}`);
}

/** UTF-8 length of a value, rejecting strings UTF-8 cannot carry exactly. */
function checkedUtf8Length(text: string): number {
  const byteLength = utf8Length(text);
  if (byteLength !== text.length && LONE_SURROGATE.test(text)) {
    throw new RangeError(
      `string ${JSON.stringify(text.slice(0, 40))} holds a lone surrogate (not valid UTF-8)`,
    );
  }
  return byteLength;
}

/** Turns concatenated bytes + byte offsets into strings; all-ASCII text decodes in one call. */
function sliceStrings(
  bytes: Uint8Array,
  offsets: Float64Array | number[],
  count: number,
  ascii: boolean,
): string[] {
  const out = new Array<string>(count);
  if (ascii) {
    const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    for (let i = 0; i < count; i++) out[i] = all.substring(offsets[i], offsets[i + 1]);
    return out;
  }
  for (let i = 0; i < count; i++) out[i] = decodeUtf8(bytes, offsets[i], offsets[i + 1]);
  return out;
}

// ---- strings ---------------------------------------------------------------------------

export function encodeStrings(values: readonly string[]): Streams {
  const lengths = new ByteWriter(8 + values.length * 2);
  const lens = new Array<number>(values.length);
  let total = 0;
  let ascii = true;
  for (let i = 0; i < values.length; i++) {
    const len = checkedUtf8Length(values[i]);
    lens[i] = len;
    total += len;
    if (len !== values[i].length) ascii = false;
  }
  lengths.writeU8(ascii ? FLAG_ASCII : 0);
  for (const len of lens) lengths.writeVarUint(len);
  const bytes = new ByteWriter(total);
  for (let i = 0; i < values.length; i++) bytes.writeUtf8(values[i], lens[i]);
  return [lengths.finish(), bytes.finish()];
}

export function decodeStrings(streams: Streams, count: number): string[] {
  const { bytes, offsets, ascii } = decodeStringOffsets(streams, count);
  return sliceStrings(bytes, offsets, count, ascii);
}

/**
 * The values' UTF-8 bytes, without building JS strings (the export copies bytes as they are).
 * The bytes are copied out of the streams, which may be a decoder's scratch space.
 */
export function decodeStringBytes(streams: Streams, count: number): PackedIds {
  const { bytes, offsets } = decodeStringOffsets(streams, count);
  return { bytes: bytes.slice(), ends: Uint32Array.from(offsets.subarray(1)) };
}

function decodeStringOffsets(
  streams: Streams,
  count: number,
): { bytes: Uint8Array; offsets: Float64Array; ascii: boolean } {
  expectStreams(streams, 2, 'strings');
  const reader = new ByteReader(streams[0]);
  const flags = reader.readU8();
  if ((flags & ~FLAG_ASCII) !== 0) throw new DecodeError(`strings: unknown flags ${flags}`);
  const bytes = streams[1];
  const offsets = new Float64Array(count + 1);
  let total = 0;
  for (let i = 0; i < count; i++) {
    total += reader.readVarUint();
    offsets[i + 1] = total;
  }
  if (!reader.atEnd()) throw new DecodeError(`strings: ${reader.remaining} trailing length bytes`);
  if (total !== bytes.length)
    throw new DecodeError(`strings: lengths sum to ${total}, have ${bytes.length} bytes`);
  return { bytes, offsets, ascii: (flags & FLAG_ASCII) !== 0 };
}

// ---- nullable strings ------------------------------------------------------------------

export function encodeNullableStrings(values: readonly (string | null)[]): Streams {
  const runs = new ByteWriter(16);
  const present: string[] = [];
  let i = 0;
  let wantNull = true;
  while (i < values.length) {
    let j = i;
    while (j < values.length && (values[j] === null) === wantNull) j++;
    runs.writeVarUint(j - i);
    if (!wantNull) for (let k = i; k < j; k++) present.push(values[k] as string);
    i = j;
    wantNull = !wantNull;
  }
  return [runs.finish(), ...encodeStrings(present)];
}

/** Null flags of the chunk being decoded (scratch: decoding is synchronous). */
let isNullScratch = new Uint8Array(4096);

/** Shared all-null columns by length (frozen: decoded columns are read-only). */
const ALL_NULLS = new Map<number, (string | null)[]>();
/** Entries held by ALL_NULLS (8 bytes each): blocks of many lengths must not pin much memory. */
const ALL_NULLS_ENTRIES_MAX = 512 * 1024;
let allNullsEntries = 0;

/** A column of `count` nulls: the usual correction columns, without an array per chunk. */
function allNulls(count: number): (string | null)[] {
  let out = ALL_NULLS.get(count);
  if (out === undefined) {
    if (allNullsEntries + count > ALL_NULLS_ENTRIES_MAX) {
      ALL_NULLS.clear();
      allNullsEntries = 0;
    }
    out = Object.freeze(new Array<string | null>(count).fill(null)) as (string | null)[];
    ALL_NULLS.set(count, out);
    allNullsEntries += count;
  }
  return out;
}

export function decodeNullableStrings(streams: Streams, count: number): (string | null)[] {
  expectStreams(streams, 3, 'nullable strings');
  const runs = new ByteReader(streams[0]);
  if (isNullScratch.length < count) isNullScratch = new Uint8Array(Math.max(count, isNullScratch.length * 2));
  const isNull = isNullScratch;
  isNull.fill(0, 0, count);
  let pos = 0;
  let presentCount = 0;
  let nullRun = true;
  while (pos < count) {
    const run = runs.readVarUint();
    if (run > count - pos || (run === 0 && pos > 0))
      throw new DecodeError(`nullable strings: run of ${run} at row ${pos} of ${count}`);
    if (nullRun) isNull.fill(1, pos, pos + run);
    else presentCount += run;
    pos += run;
    nullRun = !nullRun;
  }
  if (!runs.atEnd()) throw new DecodeError(`nullable strings: ${runs.remaining} trailing run bytes`);
  if (presentCount === 0 && streams[2].length === 0) {
    decodeStrings([streams[1], streams[2]], 0);
    return allNulls(count);
  }
  const present = decodeStrings([streams[1], streams[2]], presentCount);
  const out = new Array<string | null>(count);
  let next = 0;
  for (let r = 0; r < count; r++) out[r] = isNull[r] ? null : present[next++];
  return out;
}

// ---- radix strings ---------------------------------------------------------------------

interface RadixLayout {
  byteLength: number;
  /** Per position: -1 when variable, else the constant byte. */
  constants: Int16Array;
  variablePositions: number[];
  alphabet: Uint8Array;
  /** Variable positions are cut into groups of `groupDigits` (the last may be shorter). */
  groupDigits: number;
  /** Per group: radix^digits, and the bits that hold a value below it. */
  groupRadix: number[];
  groupBits: number[];
  valueBits: number;
}

function radixLayout(byteLength: number, constants: Int16Array, alphabet: Uint8Array): RadixLayout {
  const variablePositions: number[] = [];
  for (let p = 0; p < byteLength; p++) if (constants[p] < 0) variablePositions.push(p);
  const radix = Math.max(2, alphabet.length);
  let groupDigits = 1;
  while (radix ** (groupDigits + 1) <= RADIX_GROUP_MAX) groupDigits++;
  const groupRadix: number[] = [];
  const groupBits: number[] = [];
  let valueBits = 0;
  for (let g = 0; g < variablePositions.length; g += groupDigits) {
    const digits = Math.min(groupDigits, variablePositions.length - g);
    const groupMax = radix ** digits;
    const bits = 32 - Math.clz32(groupMax - 1);
    groupRadix.push(groupMax);
    groupBits.push(bits);
    valueBits += bits;
  }
  return {
    byteLength,
    constants,
    variablePositions,
    alphabet,
    groupDigits,
    groupRadix,
    groupBits,
    valueBits,
  };
}

/** Alphabet as byte ranges: varint count, then (start, length - 1) byte pairs. */
function writeAlphabet(w: ByteWriter, alphabet: Uint8Array): void {
  const ranges: [number, number][] = [];
  for (const b of alphabet) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[0] + last[1] === b) last[1]++;
    else ranges.push([b, 1]);
  }
  w.writeVarUint(ranges.length);
  for (const [start, length] of ranges) {
    w.writeU8(start);
    w.writeU8(length - 1);
  }
}

function readAlphabet(r: ByteReader): Uint8Array {
  const rangeCount = r.readVarUint();
  if (rangeCount > 256) throw new DecodeError(`radix strings: ${rangeCount} alphabet ranges`);
  const bytes: number[] = [];
  let prevEnd = -1;
  for (let i = 0; i < rangeCount; i++) {
    const start = r.readU8();
    const length = r.readU8() + 1;
    if (start <= prevEnd || start + length > 256)
      throw new DecodeError('radix strings: alphabet ranges out of order');
    for (let b = start; b < start + length; b++) bytes.push(b);
    prevEnd = start + length;
  }
  return Uint8Array.from(bytes);
}

/**
 * Radix-packs values of one UTF-8 byte length; returns null when they are not all the same
 * length (or too long), so the caller falls back to `strings`.
 */
export function encodeRadixStrings(values: readonly string[]): Streams | null {
  const n = values.length;
  if (n === 0) return null;
  const byteLength = checkedUtf8Length(values[0]);
  if (byteLength === 0 || byteLength > RADIX_VALUE_BYTES_MAX) return null;
  const all = new ByteWriter(n * byteLength);
  for (const v of values) {
    if (checkedUtf8Length(v) !== byteLength) return null;
    all.writeUtf8(v, byteLength);
  }
  const bytes = all.finish();
  const constants = new Int16Array(byteLength);
  for (let p = 0; p < byteLength; p++) constants[p] = bytes[p];
  const seen = new Uint8Array(256);
  for (let p = 0; p < byteLength; p++) {
    const first = bytes[p];
    for (let r = 1; r < n; r++) {
      if (bytes[r * byteLength + p] !== first) {
        constants[p] = -1;
        break;
      }
    }
    if (constants[p] < 0) for (let r = 0; r < n; r++) seen[bytes[r * byteLength + p]] = 1;
  }
  const alphabetList: number[] = [];
  const rank = new Uint8Array(256);
  for (let b = 0; b < 256; b++) {
    if (seen[b]) {
      rank[b] = alphabetList.length;
      alphabetList.push(b);
    }
  }
  const layout = radixLayout(byteLength, constants, Uint8Array.from(alphabetList));

  const header = new ByteWriter(32 + byteLength);
  header.writeVarUint(byteLength);
  for (let p = 0; p < byteLength; p += 8) {
    let mask = 0;
    for (let k = 0; k < 8 && p + k < byteLength; k++) if (constants[p + k] < 0) mask |= 1 << k;
    header.writeU8(mask);
  }
  for (let p = 0; p < byteLength; p++) if (constants[p] >= 0) header.writeU8(constants[p]);
  writeAlphabet(header, layout.alphabet);

  const packed = new BitWriter(Math.ceil((n * layout.valueBits) / 8) + 8);
  const radix = layout.alphabet.length;
  const vars = layout.variablePositions;
  const groupDigits = layout.groupDigits;
  for (let r = 0; r < n; r++) {
    const base = r * byteLength;
    for (let g = 0, group = 0; g < vars.length; g += groupDigits, group++) {
      const end = Math.min(vars.length, g + groupDigits);
      let value = 0;
      for (let k = g; k < end; k++) value = value * radix + rank[bytes[base + vars[k]]];
      packed.writeWide(value, layout.groupBits[group]);
    }
  }
  return [header.finish(), packed.finish()];
}

interface RadixHeader {
  byteLength: number;
  constants: Int16Array;
  alphabet: Uint8Array;
  layout: RadixLayout;
  ascii: boolean;
}

/** Parses and checks the header stream and the packed stream's length. */
function readRadixHeader(streams: Streams, count: number): RadixHeader {
  expectStreams(streams, 2, 'radix strings');
  const header = new ByteReader(streams[0]);
  const byteLength = header.readVarUint();
  if (byteLength === 0 || byteLength > RADIX_VALUE_BYTES_MAX)
    throw new DecodeError(`radix strings: bad byte length ${byteLength}`);
  const constants = new Int16Array(byteLength);
  const masks = header.readBytes(Math.ceil(byteLength / 8));
  for (let p = 0; p < byteLength; p++) if ((masks[p >> 3] >> (p & 7)) & 1) constants[p] = -1;
  for (let p = 0; p < byteLength; p++) if (constants[p] === 0) constants[p] = header.readU8();
  const alphabet = readAlphabet(header);
  if (!header.atEnd()) throw new DecodeError(`radix strings: ${header.remaining} trailing header bytes`);
  const layout = radixLayout(byteLength, constants, alphabet);
  const vars = layout.variablePositions;
  if (vars.length > 0 && alphabet.length < 2)
    throw new DecodeError(`radix strings: alphabet of ${alphabet.length} for variable positions`);
  if (streams[1].length !== Math.ceil((count * layout.valueBits) / 8)) {
    throw new DecodeError(
      `radix strings: ${streams[1].length} packed bytes for ${count} values of ${layout.valueBits} bits`,
    );
  }
  let ascii = true;
  for (let p = 0; p < byteLength; p++) if (constants[p] >= 0x80) ascii = false;
  if (vars.length > 0 && alphabet[alphabet.length - 1] >= 0x80) ascii = false;
  return { byteLength, constants, alphabet, layout, ascii };
}

/** `count` values' bytes with the constant positions filled in. */
function radixOutput(h: RadixHeader, count: number): Uint8Array {
  const { byteLength, constants } = h;
  const out = new Uint8Array(count * byteLength);
  for (let p = 0; p < byteLength; p++) {
    if (constants[p] < 0) continue;
    for (let r = 0; r < count; r++) out[r * byteLength + p] = constants[p];
  }
  return out;
}

function fixedOffsets(count: number, byteLength: number): Float64Array {
  const offsets = new Float64Array(count + 1);
  for (let r = 0; r <= count; r++) offsets[r] = r * byteLength;
  return offsets;
}

/** Writes the digits of one group value (least significant digit last). */
function putGroup(
  h: RadixHeader,
  out: Uint8Array,
  base: number,
  group: number,
  value: number,
  row: number,
): void {
  const { layout, alphabet } = h;
  if (value >= layout.groupRadix[group])
    throw new DecodeError(`radix strings: value ${row} exceeds its radix range`);
  const vars = layout.variablePositions;
  const radix = alphabet.length;
  const first = group * layout.groupDigits;
  for (let k = Math.min(vars.length, first + layout.groupDigits) - 1; k >= first; k--) {
    const q = (value / radix) | 0;
    out[base + vars[k]] = alphabet[value - q * radix];
    value = q;
  }
}

/** Decodes this many values or more two digits at a time (below, building the table costs more). */
const DIGIT_PAIRS_MIN_VALUES = 256;
/** Digit-pair tables by alphabet (a store holds few alphabets: base62 ids, hex, ...). */
const digitPairTables = new Map<string, Uint16Array>();
const DIGIT_PAIR_TABLES_MAX = 16;

/** For v < radix², the alphabet bytes of v's two digits: low digit in the low byte. */
function digitPairs(alphabet: Uint8Array): Uint16Array {
  const key = String.fromCharCode(...alphabet);
  let table = digitPairTables.get(key);
  if (table === undefined) {
    const radix = alphabet.length;
    table = new Uint16Array(radix * radix);
    for (let hi = 0; hi < radix; hi++)
      for (let lo = 0; lo < radix; lo++) table[hi * radix + lo] = alphabet[lo] | (alphabet[hi] << 8);
    if (digitPairTables.size >= DIGIT_PAIR_TABLES_MAX) digitPairTables.clear();
    digitPairTables.set(key, table);
  }
  return table;
}

/** Every value's bytes, back to back (each `h.byteLength` long). */
function decodeRadixBytes(h: RadixHeader, streams: Streams, count: number): Uint8Array {
  const out = radixOutput(h, count);
  const bits = new BitReader(streams[1]);
  const { groupBits, groupRadix, groupDigits, variablePositions: vars } = h.layout;
  const groupCount = groupRadix.length;
  const alphabet = h.alphabet;
  const radix = alphabet.length;
  if (count < DIGIT_PAIRS_MIN_VALUES || radix > 256 || radix < 2) {
    for (let r = 0; r < count; r++) {
      const base = r * h.byteLength;
      for (let group = 0; group < groupCount; group++)
        putGroup(h, out, base, group, bits.readWide(groupBits[group]), r);
    }
    return out;
  }
  // putGroup two digits per division: a table gives both digits' bytes.
  const pairs = digitPairs(alphabet);
  const radix2 = radix * radix;
  for (let r = 0; r < count; r++) {
    const base = r * h.byteLength;
    for (let group = 0; group < groupCount; group++) {
      let value = bits.readWide(groupBits[group]);
      if (value >= groupRadix[group])
        throw new DecodeError(`radix strings: value ${r} exceeds its radix range`);
      const first = group * groupDigits;
      let k = Math.min(vars.length, first + groupDigits) - 1;
      for (; k > first; k -= 2) {
        const q = (value / radix2) | 0;
        const pair = pairs[value - q * radix2];
        out[base + vars[k]] = pair & 0xff;
        out[base + vars[k - 1]] = pair >>> 8;
        value = q;
      }
      if (k === first) out[base + vars[k]] = alphabet[value];
    }
  }
  return out;
}

export function decodeRadixStrings(streams: Streams, count: number): string[] {
  const h = readRadixHeader(streams, count);
  const out = decodeRadixBytes(h, streams, count);
  return sliceStrings(out, fixedOffsets(count, h.byteLength), count, h.ascii);
}

/** The values' UTF-8 bytes, without building JS strings. */
export function decodeRadixStringBytes(streams: Streams, count: number): PackedIds {
  const h = readRadixHeader(streams, count);
  const ends = new Uint32Array(count);
  for (let r = 0; r < count; r++) ends[r] = (r + 1) * h.byteLength;
  return { bytes: decodeRadixBytes(h, streams, count), ends };
}

/** `width` (<= 53) bits at bit `pos`, least significant first (the BitWriter order). */
function readBitsAt(bytes: Uint8Array, pos: number, width: number): number {
  const at = pos >> 3;
  if (width <= 24 && at + 4 <= bytes.length) {
    // One 32-bit read holds offset (< 8) + width (<= 24) bits.
    const word = bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
    return (word >>> (pos & 7)) & ((1 << width) - 1);
  }
  if (width <= 31 && at + 5 <= bytes.length) {
    // Five bytes (40 bits, exact as a float) hold offset + width <= 38 bits.
    const low = (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
    const all = low + bytes[at + 4] * 0x100000000;
    return Math.floor(all / (1 << (pos & 7))) % 2 ** width;
  }
  let value = 0;
  let scale = 1;
  while (width > 0) {
    const offset = pos & 7;
    const take = Math.min(8 - offset, width);
    value += ((bytes[pos >> 3] >> offset) & ((1 << take) - 1)) * scale;
    scale *= 1 << take;
    pos += take;
    width -= take;
  }
  return value;
}

/**
 * The values at `rows` (ascending or not) of a radix-packed chunk of `count` values, without
 * decoding the others: every value has the same bit width, so row r starts at bit r * width.
 */
export function decodeRadixStringsAt(streams: Streams, count: number, rows: ArrayLike<number>): string[] {
  const h = readRadixHeader(streams, count);
  const m = rows.length;
  const out = radixOutput(h, m);
  const packed = streams[1];
  const { groupBits, valueBits } = h.layout;
  const groupCount = h.layout.groupRadix.length;
  for (let j = 0; j < m; j++) {
    const r = rows[j];
    if (!(r >= 0 && r < count)) throw new RangeError(`radix strings: no row ${r} of ${count}`);
    let pos = r * valueBits;
    const base = j * h.byteLength;
    for (let group = 0; group < groupCount; group++) {
      putGroup(h, out, base, group, readBitsAt(packed, pos, groupBits[group]), r);
      pos += groupBits[group];
    }
  }
  return sliceStrings(out, fixedOffsets(m, h.byteLength), m, h.ascii);
}

/** The values at `rows` of a `strings` chunk of `count` values (lengths are scanned, bytes sliced once). */
export function decodeStringsAt(streams: Streams, count: number, rows: ArrayLike<number>): string[] {
  const all = decodeStringOffsets(streams, count);
  const m = rows.length;
  const out = new Array<string>(m);
  for (let j = 0; j < m; j++) {
    const r = rows[j];
    if (!(r >= 0 && r < count)) throw new RangeError(`strings: no row ${r} of ${count}`);
    out[j] = all.ascii
      ? Buffer.from(all.bytes.buffer, all.bytes.byteOffset, all.bytes.byteLength).toString(
          'latin1',
          all.offsets[r],
          all.offsets[r + 1],
        )
      : decodeUtf8(all.bytes, all.offsets[r], all.offsets[r + 1]);
  }
  return out;
}

// ---- front coding ----------------------------------------------------------------------

/** Writes a list of strings (best sorted) as varint count + (shared prefix, suffix) pairs. */
export function writeFrontCoded(w: ByteWriter, values: readonly string[]): void {
  w.writeVarUint(values.length);
  let prev: Buffer = Buffer.alloc(0);
  for (const v of values) {
    checkedUtf8Length(v);
    const cur = Buffer.from(v, 'utf8');
    const limit = Math.min(prev.length, cur.length);
    let shared = 0;
    while (shared < limit && prev[shared] === cur[shared]) shared++;
    w.writeVarUint(shared);
    w.writeVarUint(cur.length - shared);
    w.writeBytes(cur.subarray(shared));
    prev = cur;
  }
}

export function readFrontCoded(r: ByteReader, countMax: number): string[] {
  const count = r.readVarUint();
  if (count > countMax) throw new DecodeError(`front coded: ${count} values, at most ${countMax} expected`);
  const out = new Array<string>(count);
  let prev = new Uint8Array(0);
  for (let i = 0; i < count; i++) {
    const shared = r.readVarUint();
    const suffixLength = r.readVarUint();
    if (shared > prev.length)
      throw new DecodeError(`front coded: shared prefix ${shared} longer than ${prev.length}`);
    const suffix = r.readBytes(suffixLength);
    const cur = new Uint8Array(shared + suffixLength);
    cur.set(prev.subarray(0, shared));
    cur.set(suffix, shared);
    out[i] = decodeUtf8(cur, 0, cur.length);
    prev = cur;
  }
  return out;
}
