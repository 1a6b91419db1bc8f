/**
 * Integer column codecs. Each encoder turns a run of values into a few byte streams (the chunk
 * layer compresses each stream on its own, so a skewed stream keeps its own entropy coder and
 * random bits are stored raw); each decoder fills an output array from those streams.
 *
 * - runs:       (value, run length) varint pairs; sorted key columns and `kind` shrink to bytes.
 * - planes:     fixed-width little-endian byte planes (all low bytes, then the next ...); codes.
 * - bit-class:  per value a class byte (bit length, +64 if negative) and its mantissa bits
 *               below the leading one, bit-packed. Classes compress well, mantissas are noise.
 * - delta bit-class: bit-class of successive differences (timestamps).
 * - value dict: the distinct values (delta varints) and per-row plane codes into them
 *               (ingested_at_ms: a few dozen distinct instants in random row order).
 *
 * Invariants:
 * - decode(encode(x)) === x exactly for the documented domain of each codec;
 * - decoders validate what they produce (value limits, stream lengths) and throw DecodeError.
 */

import { NULL_CODE } from '../../model/columns.ts';
import { BitWriter } from './bits.ts';
import { ByteReader, ByteWriter, DecodeError } from './varint.ts';

export type Streams = Uint8Array[];

/** Class byte of a big quantity (its value lives in a separate stream). */
export const CLASS_BIG = 255;
const CLASS_NEGATIVE = 64;
const BIT_LENGTH_MAX = 53;

function expectStreams(streams: Streams, count: number, codec: string): void {
  if (streams.length !== count)
    throw new DecodeError(`${codec}: ${streams.length} streams, expected ${count}`);
}

/** The streams of a point read, and a row inside the chunk (a RangeError: the caller's mistake). */
function expectPointRead(
  streams: Streams,
  streamCount: number,
  codec: string,
  row: number,
  count: number,
): void {
  expectStreams(streams, streamCount, codec);
  if (!(Number.isInteger(row) && row >= 0 && row < count))
    throw new RangeError(`${codec}: no row ${row} of ${count}`);
}

function expectConsumed(reader: ByteReader, what: string): void {
  if (!reader.atEnd()) throw new DecodeError(`${what}: ${reader.remaining} trailing bytes`);
}

// ---- runs ------------------------------------------------------------------------------

/** Values must be integers in [0, 2^32). */
export function encodeRuns(values: ArrayLike<number>): Streams {
  const vals = new ByteWriter(64);
  const runs = new ByteWriter(64);
  let i = 0;
  const n = values.length;
  while (i < n) {
    const v = values[i];
    let j = i + 1;
    while (j < n && values[j] === v) j++;
    vals.writeVarUint(v);
    runs.writeVarUint(j - i);
    i = j;
  }
  return [vals.finish(), runs.finish()];
}

/**
 * Fills `out` (its whole length) and checks every value is below `limit`. With `nullShift`,
 * stored values are dictionary codes + 1: 0 becomes NULL_CODE (2^32 - 1) and v becomes v - 1,
 * once per run instead of once per row.
 */
export function decodeRunsInto(
  streams: Streams,
  out: Uint8Array | Uint32Array,
  limit: number,
  nullShift = false,
): void {
  expectStreams(streams, 2, 'runs');
  const vals = new ByteReader(streams[0]);
  const runs = new ByteReader(streams[1]);
  let pos = 0;
  while (pos < out.length) {
    const v = vals.readVarUint();
    const run = runs.readVarUint();
    if (v >= limit) throw new DecodeError(`runs: value ${v} is not below ${limit}`);
    if (run === 0 || run > out.length - pos)
      throw new DecodeError(`runs: run of ${run} at row ${pos} of ${out.length}`);
    const value = nullShift ? (v === 0 ? NULL_CODE : v - 1) : v;
    // A builtin fill costs more than a short loop; dictionary codes run short in mixed blocks.
    if (run < 32) for (let i = pos, end = pos + run; i < end; i++) out[i] = value;
    else out.fill(value, pos, pos + run);
    pos += run;
  }
  expectConsumed(vals, 'runs values');
  expectConsumed(runs, 'runs lengths');
}

/**
 * The value decodeRunsInto would put at `row` of `count` values, reading runs only up to it:
 * a point lookup takes one value of a block, and filling the block's thousands of rows was most
 * of its decode. The runs read are checked as decodeRunsInto checks them.
 */
export function decodeRunsAt(
  streams: Streams,
  count: number,
  row: number,
  limit: number,
  nullShift = false,
): number {
  expectPointRead(streams, 2, 'runs', row, count);
  const vals = new ByteReader(streams[0]);
  const runs = new ByteReader(streams[1]);
  for (let pos = 0; ;) {
    const v = vals.readVarUint();
    const run = runs.readVarUint();
    if (v >= limit) throw new DecodeError(`runs: value ${v} is not below ${limit}`);
    if (run === 0 || run > count - pos)
      throw new DecodeError(`runs: run of ${run} at row ${pos} of ${count}`);
    if (row < pos + run) return nullShift ? (v === 0 ? NULL_CODE : v - 1) : v;
    pos += run;
  }
}

// ---- planes ----------------------------------------------------------------------------

function byteWidth(max: number): number {
  return max < 0x100 ? 1 : max < 0x10000 ? 2 : max < 0x1000000 ? 3 : 4;
}

/** Values must be integers in [0, 2^32). One stream: u8 width, then `width` planes. */
export function encodePlanes(values: ArrayLike<number>): Streams {
  const n = values.length;
  let max = 0;
  for (let i = 0; i < n; i++) if (values[i] > max) max = values[i];
  const width = byteWidth(max);
  const out = new Uint8Array(1 + width * n);
  out[0] = width;
  for (let p = 0; p < width; p++) {
    const base = 1 + p * n;
    const shift = 8 * p;
    for (let i = 0; i < n; i++) out[base + i] = values[i] >>> shift;
  }
  return [out];
}

/** Like decodeRunsInto, `nullShift` maps stored code + 1 back to a code or NULL_CODE. */
export function decodePlanesInto(
  streams: Streams,
  out: Uint8Array | Uint32Array,
  limit: number,
  nullShift = false,
): void {
  expectStreams(streams, 1, 'planes');
  const bytes = streams[0];
  const n = out.length;
  const width = bytes.length > 0 ? bytes[0] : 0;
  if (width < 1 || width > 4 || bytes.length !== 1 + width * n) {
    throw new DecodeError(`planes: ${bytes.length} bytes for ${n} values of width ${width}`);
  }
  for (let i = 0; i < n; i++) out[i] = bytes[1 + i];
  for (let p = 1; p < width; p++) {
    const base = 1 + p * n;
    const shift = 8 * p;
    for (let i = 0; i < n; i++) out[i] |= bytes[base + i] << shift;
  }
  // Uint32Array wraps negative int32 results of the last shift back to unsigned.
  for (let i = 0; i < n; i++)
    if (out[i] >= limit) throw new DecodeError(`planes: value ${out[i]} is not below ${limit}`);
  if (nullShift) for (let i = 0; i < n; i++) out[i] = out[i] === 0 ? NULL_CODE : out[i] - 1;
}

/** The value decodePlanesInto would put at `row` of `count` values, reading only its bytes. */
export function decodePlanesAt(
  streams: Streams,
  count: number,
  row: number,
  limit: number,
  nullShift = false,
): number {
  expectPointRead(streams, 1, 'planes', row, count);
  const bytes = streams[0];
  const width = bytes.length > 0 ? bytes[0] : 0;
  if (width < 1 || width > 4 || bytes.length !== 1 + width * count) {
    throw new DecodeError(`planes: ${bytes.length} bytes for ${count} values of width ${width}`);
  }
  let v = 0;
  for (let p = 0, scale = 1; p < width; p++, scale *= 256) v += bytes[1 + p * count + row] * scale;
  if (v >= limit) throw new DecodeError(`planes: value ${v} is not below ${limit}`);
  return nullShift ? (v === 0 ? NULL_CODE : v - 1) : v;
}

// ---- bit-class -------------------------------------------------------------------------

export function bitLength(abs: number): number {
  // 32 - clz32 for int32 range; larger magnitudes go through the exponent.
  if (abs < 0x80000000) return 32 - Math.clz32(abs);
  let bits = 31;
  let v = Math.floor(abs / 0x80000000);
  while (v > 0) {
    bits++;
    v = Math.floor(v / 2);
  }
  return bits;
}

/** Accumulates bit-class coded safe integers. */
export class BitClassWriter {
  readonly classes: Uint8Array;
  private readonly mantissas = new BitWriter(256);
  private count = 0;

  constructor(capacity: number) {
    this.classes = new Uint8Array(capacity);
  }

  /** A safe integer (the caller guarantees it; checked by the column encoders). */
  put(value: number): void {
    const negative = value < 0;
    const abs = negative ? -value : value;
    const bits = bitLength(abs);
    this.classes[this.count++] = bits + (negative ? CLASS_NEGATIVE : 0);
    if (bits <= 1) return;
    // The leading one is implied by the class: store the bits below it.
    const rest = bits - 1;
    if (rest <= 24) this.mantissas.writeBits(abs - 2 ** rest, rest);
    else this.mantissas.writeWide(abs - 2 ** rest, rest);
  }

  /** A class with no mantissa (e.g. CLASS_BIG). */
  putClass(cls: number): void {
    this.classes[this.count++] = cls;
  }

  finish(): Streams {
    if (this.count !== this.classes.length)
      throw new Error(`bit-class: wrote ${this.count} of ${this.classes.length} values`);
    return [this.classes, this.mantissas.finish()];
  }
}

/** 2^k for k in 0..53: the implied leading one of a class. */
const POW2 = Float64Array.from({ length: BIT_LENGTH_MAX + 1 }, (_, k) => 2 ** k);

/**
 * Decodes bit-class values into `out` (one per class byte). With `delta`, values are running
 * sums of the decoded differences. With `bigRows`, class CLASS_BIG is allowed: the row gets NaN
 * and its index is appended. The bit reader lives in locals: this is the query hot path.
 */
export function decodeBitClassInto(
  classes: Uint8Array,
  mantissas: Uint8Array,
  out: Float64Array,
  delta: boolean,
  bigRows: number[] | null,
): void {
  if (classes.length !== out.length)
    throw new DecodeError(`bit-class: ${classes.length} classes for ${out.length} rows`);
  const m = mantissas;
  const end = m.length;
  let pos = 0;
  let acc = 0;
  let accBits = 0;
  let prev = 0;
  for (let i = 0; i < classes.length; i++) {
    const cls = classes[i];
    let value: number;
    if (cls <= 1) {
      value = cls;
    } else {
      if (cls === CLASS_BIG && bigRows !== null) {
        out[i] = Number.NaN;
        bigRows.push(i);
        continue;
      }
      const bits = cls & 63;
      if ((cls & ~(CLASS_NEGATIVE | 63)) !== 0 || bits > BIT_LENGTH_MAX)
        throw new DecodeError(`bit-class: bad class byte ${cls}`);
      let abs = bits;
      if (bits > 1 && bits <= 25) {
        // The common case: the mantissa fits one read of at most 24 bits.
        const rest = bits - 1;
        if (accBits < rest && accBits <= 8 && pos + 3 <= end) {
          // Three bytes in one step (they fit: accBits + 24 <= 32).
          acc |= (m[pos] | (m[pos + 1] << 8) | (m[pos + 2] << 16)) << accBits;
          pos += 3;
          accBits += 24;
        }
        while (accBits < rest) {
          if (pos >= end) throw new DecodeError(`bit-class: mantissas end at ${end} bytes`);
          acc |= m[pos++] << accBits;
          accBits += 8;
        }
        abs = POW2[rest] + (acc & ((1 << rest) - 1));
        acc >>>= rest;
        accBits -= rest;
      } else if (bits > 1) {
        let rest = bits - 1;
        abs = POW2[rest];
        let scale = 1;
        while (rest > 0) {
          const n = Math.min(rest, 24);
          while (accBits < n) {
            if (pos >= end) throw new DecodeError(`bit-class: mantissas end at ${end} bytes`);
            acc |= m[pos++] << accBits;
            accBits += 8;
          }
          abs += (acc & ((1 << n) - 1)) * scale;
          acc >>>= n;
          accBits -= n;
          scale *= 0x1000000;
          rest -= n;
        }
      }
      value = cls & CLASS_NEGATIVE ? -abs : abs;
    }
    if (delta) {
      prev += value;
      out[i] = prev;
    } else {
      out[i] = value;
    }
  }
  // A whole unread byte left in the accumulator is a stream longer than its values.
  if (pos !== end || accBits >= 8) throw new DecodeError(`bit-class: ${end - pos} mantissa bytes left`);
}

/** Safe integers; deltas of successive values must be safe too (true for values in [0, 2^53)). */
export function encodeDeltaBitClass(values: Float64Array): Streams {
  const writer = new BitClassWriter(values.length);
  let prev = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    writer.put(v - prev);
    prev = v;
  }
  return writer.finish();
}

export function decodeDeltaBitClassInto(streams: Streams, out: Float64Array): void {
  expectStreams(streams, 2, 'delta bit-class');
  decodeBitClassInto(streams[0], streams[1], out, true, null);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isSafeInteger(out[i]))
      throw new DecodeError(`delta bit-class: row ${i} is not a safe integer`);
  }
}

// ---- value dictionary ------------------------------------------------------------------

/**
 * Integers in [0, 2^53). Streams: distinct values ascending as delta varints, then plane codes.
 * Returns null when more than `distinctMax` values are distinct (the dictionary cannot pay off).
 */
export function encodeValueDict(values: Float64Array, distinctMax = values.length): Streams | null {
  const seen = new Set<number>();
  for (let i = 0; i < values.length; i++) {
    seen.add(values[i]);
    if (seen.size > distinctMax) return null;
  }
  const distinct = Float64Array.from(seen).sort();
  const index = new Map<number, number>();
  const dictStream = new ByteWriter(16 + distinct.length * 4);
  dictStream.writeVarUint(distinct.length);
  let prev = 0;
  for (let i = 0; i < distinct.length; i++) {
    index.set(distinct[i], i);
    dictStream.writeVarUint(distinct[i] - prev);
    prev = distinct[i];
  }
  const codes = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = index.get(values[i]) as number;
  return [dictStream.finish(), ...encodePlanes(codes)];
}

/**
 * Scratch for decoders' intermediate arrays (a typed array allocation costs far more than its
 * bytes); used only inside one synchronous decode call.
 */
let u32Scratch = new Uint32Array(4096);
let f64Scratch = new Float64Array(256);

function scratchU32(n: number): Uint32Array {
  if (u32Scratch.length < n) u32Scratch = new Uint32Array(Math.max(n, u32Scratch.length * 2));
  return u32Scratch.subarray(0, n);
}

function scratchF64(n: number): Float64Array {
  if (f64Scratch.length < n) f64Scratch = new Float64Array(Math.max(n, f64Scratch.length * 2));
  return f64Scratch.subarray(0, n);
}

export function decodeValueDictInto(streams: Streams, out: Float64Array): void {
  expectStreams(streams, 2, 'value dict');
  const reader = new ByteReader(streams[0]);
  const count = reader.readVarUint();
  if (count > streams[0].length)
    throw new DecodeError(`value dict: ${count} values in ${streams[0].length} bytes`);
  const distinct = scratchF64(count);
  let prev = 0;
  for (let i = 0; i < count; i++) {
    prev += reader.readVarUint();
    distinct[i] = prev;
  }
  expectConsumed(reader, 'value dict');
  if (count > 0 && !Number.isSafeInteger(prev))
    throw new DecodeError(`value dict: value ${prev} is not a safe integer`);
  const codes = scratchU32(out.length);
  decodePlanesInto([streams[1]], codes, count);
  for (let i = 0; i < out.length; i++) out[i] = distinct[codes[i]];
}
