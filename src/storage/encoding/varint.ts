/**
 * Byte-level writer and reader for every binary structure of the storage layer: unsigned
 * LEB128 varints, zigzag varints for signed integers (numbers, and bigints up to i128),
 * little-endian fixed-width fields and length-prefixed UTF-8 strings.
 *
 * Invariants:
 * - every `writeX` has a `readX` that returns exactly the written value;
 * - the number path never touches BigInt; values are exact doubles end to end;
 * - a read past the end, an over-long varint or an out-of-range value throws DecodeError and
 *   never returns a guess.
 */

/** Largest magnitude of a quantity: 10^38 - 1 (fits i128 and Decimal128(38,0)). */
export const BIG_ABS_MAX = 10n ** 38n - 1n;
/** Unsigned varints on the number path stop at 2^53 (8 bytes of 7 bits). */
const VARUINT_MAX = 2 ** 53;
const VARUINT_BYTES_MAX = 8;
/** 10^38 needs 127 bits; zigzag adds one: 128 bits -> 19 bytes of 7 bits. */
const BIG_VARINT_BYTES_MAX = 19;
const TWO_POW_52 = 2 ** 52;

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const utf8Encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is data (a string may start with it), not a byte-order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** UTF-8 byte length of a string without encoding it. */
export function utf8Length(text: string): number {
  // Short ASCII strings (event ids) are counted here: the native call costs more than the loop.
  const n = text.length;
  if (n <= 64) {
    let i = 0;
    while (i < n && text.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(text, 'utf8');
}

/** Decodes bytes[start, end) as UTF-8; short ASCII runs skip the native call, which dominates. */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 24) {
    let text = '';
    for (let i = start; i < end; i++) {
      const b = bytes[i];
      if (b >= 0x80) return decodeUtf8Native(bytes, start, end);
      text += String.fromCharCode(b);
    }
    return text;
  }
  return decodeUtf8Native(bytes, start, end);
}

function decodeUtf8Native(bytes: Uint8Array, start: number, end: number): string {
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch {
    throw new DecodeError(`invalid UTF-8 in bytes [${start}, ${end})`);
  }
}

export class ByteWriter {
  private buf: Uint8Array;
  /** Made on the first fixed-width write: most writers (tens of thousands per flush) need none. */
  private view: DataView | null = null;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  private dataView(): DataView {
    this.view ??= new DataView(this.buf.buffer);
    return this.view;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = null;
  }

  writeU8(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value & 0xff;
  }

  /** Unsigned LEB128 of an integer in [0, 2^53]. */
  writeVarUint(value: number): void {
    if (!(value >= 0 && value <= VARUINT_MAX && Number.isInteger(value))) {
      throw new RangeError(`writeVarUint: ${value} is not an integer in [0, 2^53]`);
    }
    this.ensure(VARUINT_BYTES_MAX);
    this.putVarUint(value);
  }

  /** Unchecked LEB128 of a non-negative integer double (exact for any such double). */
  private putVarUint(value: number): void {
    const buf = this.buf;
    let pos = this.pos;
    let v = value;
    while (v >= 0x80000000) {
      // Past int32: division by 128 and remainder are exact for integer doubles.
      buf[pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** Zigzag varint of a safe integer: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... */
  writeZigZag(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`writeZigZag: ${value} is not a safe integer`);
    this.ensure(VARUINT_BYTES_MAX);
    if (value >= 0) {
      this.putVarUint(value * 2); // doubling is exact for every double
      return;
    }
    const m = -value;
    if (m <= TWO_POW_52) {
      this.putVarUint(m * 2 - 1);
      return;
    }
    // 2m - 1 is not representable past 2^53: emit the low 7 bits by hand, then the rest.
    let low = 2 * (m % 64) - 1;
    let rest = Math.floor(m / 64);
    if (low < 0) {
      low += 128;
      rest -= 1;
    }
    this.buf[this.pos++] = low | 0x80;
    this.putVarUint(rest);
  }

  /** Zigzag LEB128 of a bigint with |value| <= 10^38 - 1. */
  writeBigZigZag(value: bigint): void {
    const abs = value < 0n ? -value : value;
    if (abs > BIG_ABS_MAX) throw new RangeError(`writeBigZigZag: |${value}| exceeds 10^38 - 1`);
    let u = value < 0n ? (abs << 1n) - 1n : abs << 1n;
    this.ensure(BIG_VARINT_BYTES_MAX);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  writeBytes(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  writeU32LE(value: number): void {
    if (!(value >= 0 && value <= 0xffffffff && Number.isInteger(value))) {
      throw new RangeError(`writeU32LE: ${value} is not a u32`);
    }
    this.ensure(4);
    this.dataView().setUint32(this.pos, value, true);
    this.pos += 4;
  }

  writeF64LE(value: number): void {
    this.ensure(8);
    this.dataView().setFloat64(this.pos, value, true);
    this.pos += 8;
  }

  /** Varint byte length, then the UTF-8 bytes. */
  writeString(text: string): void {
    const byteLength = utf8Length(text);
    this.ensure(VARUINT_BYTES_MAX + byteLength);
    this.putVarUint(byteLength);
    this.putUtf8(text, byteLength);
  }

  /** UTF-8 bytes without a length prefix; the caller stores `byteLength` elsewhere. */
  writeUtf8(text: string, byteLength: number): void {
    this.ensure(byteLength);
    this.putUtf8(text, byteLength);
  }

  private putUtf8(text: string, byteLength: number): void {
    if (byteLength === text.length) {
      // ASCII: one byte per UTF-16 unit; a loop beats encodeInto for short ids.
      const buf = this.buf;
      let pos = this.pos;
      for (let i = 0; i < text.length; i++) buf[pos++] = text.charCodeAt(i);
      this.pos = pos;
      return;
    }
    const { written } = utf8Encoder.encodeInto(text, this.buf.subarray(this.pos, this.pos + byteLength));
    if (written !== byteLength)
      throw new Error(`writeUtf8: encoded ${written} bytes, expected ${byteLength}`);
    this.pos += byteLength;
  }

  /** The written bytes (a view; the writer must not be used afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class ByteReader {
  readonly bytes: Uint8Array;
  private pos: number;
  private readonly end: number;
  private view: DataView | null = null;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    if (!(start >= 0 && start <= end && end <= bytes.length)) {
      throw new RangeError(`ByteReader: bad range [${start}, ${end}) of ${bytes.length} bytes`);
    }
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }

  get position(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  atEnd(): boolean {
    return this.pos === this.end;
  }

  private need(count: number, what: string): void {
    if (this.end - this.pos < count) {
      throw new DecodeError(
        `read past end: ${what} needs ${count} bytes at offset ${this.pos}, ${this.end - this.pos} left`,
      );
    }
  }

  readU8(): number {
    if (this.pos >= this.end) this.need(1, 'u8');
    return this.bytes[this.pos++];
  }

  readVarUint(): number {
    const bytes = this.bytes;
    const end = this.end;
    let pos = this.pos;
    let result = 0;
    let shift = 0;
    // Fast path: four bytes fit in 28 bits of int32 arithmetic.
    for (; shift < 28; shift += 7) {
      if (pos >= end) this.failEnd(pos);
      const b = bytes[pos++];
      result |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    let mul = 2 ** 28;
    for (let count = 4; count < VARUINT_BYTES_MAX; count++) {
      if (pos >= end) this.failEnd(pos);
      const b = bytes[pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > VARUINT_MAX)
          throw new DecodeError(`varint ${result} exceeds 2^53 at offset ${this.pos}`);
        this.pos = pos;
        return result;
      }
      mul *= 128;
    }
    throw new DecodeError(`varint longer than ${VARUINT_BYTES_MAX} bytes at offset ${this.pos}`);
  }

  private failEnd(pos: number): never {
    throw new DecodeError(`read past end: varint at offset ${this.pos} runs to ${pos}, end is ${this.end}`);
  }

  readZigZag(): number {
    if (this.pos >= this.end) this.need(1, 'zigzag');
    const first = this.bytes[this.pos++];
    const low = first & 0x7f;
    const rest = first < 0x80 ? 0 : this.readVarUint();
    // u = rest * 128 + low, v = (u >> 1) ^ -(u & 1): computed without forming u past 2^53.
    const half = rest * 64 + (low >>> 1);
    const value = (low & 1) === 0 ? half : -(half + 1);
    if (!Number.isSafeInteger(value))
      throw new DecodeError(`zigzag varint exceeds a safe integer at offset ${this.pos}`);
    return value;
  }

  readBigZigZag(): bigint {
    let u = 0n;
    let shift = 0n;
    for (let count = 0; count < BIG_VARINT_BYTES_MAX; count++) {
      const b = this.readU8();
      u |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) {
        const value = u & 1n ? -((u + 1n) >> 1n) : u >> 1n;
        if ((value < 0n ? -value : value) > BIG_ABS_MAX)
          throw new DecodeError(`big zigzag ${value} exceeds 10^38 - 1`);
        return value;
      }
      shift += 7n;
    }
    throw new DecodeError(`big varint longer than ${BIG_VARINT_BYTES_MAX} bytes at offset ${this.pos}`);
  }

  /** A view of the next `count` bytes (no copy). */
  readBytes(count: number): Uint8Array {
    this.need(count, 'bytes');
    const out = this.bytes.subarray(this.pos, this.pos + count);
    this.pos += count;
    return out;
  }

  skip(count: number): void {
    this.need(count, 'skip');
    this.pos += count;
  }

  private dataView(): DataView {
    if (this.view === null)
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    return this.view;
  }

  readU32LE(): number {
    this.need(4, 'u32');
    const value = this.dataView().getUint32(this.pos, true);
    this.pos += 4;
    return value;
  }

  readF64LE(): number {
    this.need(8, 'f64');
    const value = this.dataView().getFloat64(this.pos, true);
    this.pos += 8;
    return value;
  }

  readString(): string {
    const byteLength = this.readVarUint();
    this.need(byteLength, 'string');
    const text = decodeUtf8(this.bytes, this.pos, this.pos + byteLength);
    this.pos += byteLength;
    return text;
  }
}
