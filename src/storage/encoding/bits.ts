/**
 * Bit-packed streams, least significant bit first: the raw (incompressible) half of the
 * bit-class integer codec and of radix-packed ids.
 *
 * Invariants:
 * - writeBits(v, n) followed by readBits(n) returns v, for 0 <= n <= 24 and 0 <= v < 2^n;
 * - finish() pads the last byte with zero bits; a read past the last byte throws DecodeError.
 */

import { DecodeError } from './varint.ts';

/** Widest single write/read: keeps the accumulator inside a positive int32. */
export const BITS_PER_OP_MAX = 24;

export class BitWriter {
  private buf: Uint8Array;
  private pos = 0;
  private acc = 0;
  private accBits = 0;

  constructor(initialCapacity = 64) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  writeBits(value: number, count: number): void {
    this.acc |= value << this.accBits;
    this.accBits += count;
    if (this.accBits >= 8) this.drain();
  }

  /** Writes an integer in [0, 2^count) for count <= 53, in 24-bit pieces. */
  writeWide(value: number, count: number): void {
    if (count <= BITS_PER_OP_MAX) {
      this.writeBits(value, count);
      return;
    }
    const low = value % 0x1000000;
    this.writeBits(low, BITS_PER_OP_MAX);
    this.writeWide((value - low) / 0x1000000, count - BITS_PER_OP_MAX);
  }

  private drain(): void {
    if (this.pos + 4 > this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2 + 4);
      next.set(this.buf.subarray(0, this.pos));
      this.buf = next;
    }
    while (this.accBits >= 8) {
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.accBits -= 8;
    }
  }

  finish(): Uint8Array {
    if (this.accBits > 0) {
      this.accBits = 8; // pad the last byte with zeros
      this.drain();
    }
    return this.buf.subarray(0, this.pos);
  }
}

export class BitReader {
  private readonly bytes: Uint8Array;
  private pos = 0;
  private acc = 0;
  private accBits = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  readBits(count: number): number {
    while (this.accBits < count) {
      if (this.pos >= this.bytes.length)
        throw new DecodeError(`bit stream: read past end of ${this.bytes.length} bytes`);
      this.acc |= this.bytes[this.pos++] << this.accBits;
      this.accBits += 8;
    }
    const value = count === 0 ? 0 : this.acc & ((1 << count) - 1);
    this.acc >>>= count;
    this.accBits -= count;
    return value;
  }

  /** Reads an integer of up to 53 bits written by writeWide. */
  readWide(count: number): number {
    if (count <= BITS_PER_OP_MAX) return this.readBits(count);
    const low = this.readBits(BITS_PER_OP_MAX);
    return low + this.readWide(count - BITS_PER_OP_MAX) * 0x1000000;
  }

  /** Bytes not yet pulled into the accumulator (whole bytes only). */
  get remainingBytes(): number {
    return this.bytes.length - this.pos;
  }
}
