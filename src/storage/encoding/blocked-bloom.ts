/**
 * Blocked Bloom filter over event-id hashes: every key lives in one 512-bit block (one cache
 * line), so a probe touches one line of memory whatever the filter's size. The database-wide
 * id filter (storage/id-filter.ts) is one of these.
 *
 * Key: words h1, h2 of hash128(event_id). The block is `floor(h1 · blockCount / 2^32)`; inside
 * it, HASH_COUNT bits at (a + i·b) mod 512 with a = h2 mod 512 and b = (h2 >>> 16) mod 512, made
 * odd (so the positions are distinct).
 *
 * Serialized form (persisted, never change in place): u32 LE blockCount, then blockCount × 16
 * u32 LE words (bit p of a block is word p >> 5, mask 1 << (p & 31)).
 *
 * Invariants:
 * - no false negatives: after add(h1, h2), mayContain(h1, h2) is true forever;
 * - blockCount ≥ 1; the hash count is fixed (HASH_COUNT), so filters of any size agree on it.
 */
import { DecodeError } from './varint.ts';

export const BLOCK_WORDS = 16;
export const BLOCK_BITS = BLOCK_WORDS * 32;
/** Bits set per key: a compromise over the filter's range of 10 to 15 bits per key (fixed: persisted filters rely on it). */
export const HASH_COUNT = 6;
/** Blocks up to this count keep `h1 · blockCount` exact in doubles. */
const BLOCK_COUNT_MAX = 2 ** 21;

export class BlockedBloom {
  readonly blockCount: number;
  private readonly words: Uint32Array;
  /** Probes answered since creation (tests count them). */
  probes = 0;

  private constructor(blockCount: number, words: Uint32Array) {
    this.blockCount = blockCount;
    this.words = words;
  }

  /** A filter of about `keys · bitsPerKey` bits (at least one block). */
  static create(keys: number, bitsPerKey: number): BlockedBloom {
    if (!(keys >= 0 && bitsPerKey > 0))
      throw new RangeError(`blocked bloom: bad size ${keys} × ${bitsPerKey}`);
    const blocks = Math.min(BLOCK_COUNT_MAX, Math.max(1, Math.ceil((keys * bitsPerKey) / BLOCK_BITS)));
    return new BlockedBloom(blocks, new Uint32Array(blocks * BLOCK_WORDS));
  }

  get sizeBytes(): number {
    return this.words.byteLength;
  }

  add(h1: number, h2: number): void {
    const base = Math.floor(((h1 >>> 0) * this.blockCount) / 4294967296) * BLOCK_WORDS;
    const words = this.words;
    let p = h2 & 511;
    const step = ((h2 >>> 16) & 511) | 1;
    for (let i = 0; i < HASH_COUNT; i++) {
      words[base + (p >>> 5)] |= 1 << (p & 31);
      p = (p + step) & 511;
    }
  }

  /** Adds every key of parallel hash word arrays. */
  addAll(h1: Uint32Array, h2: Uint32Array): void {
    for (let i = 0; i < h1.length; i++) this.add(h1[i], h2[i]);
  }

  mayContain(h1: number, h2: number): boolean {
    this.probes++;
    const base = Math.floor(((h1 >>> 0) * this.blockCount) / 4294967296) * BLOCK_WORDS;
    const words = this.words;
    let p = h2 & 511;
    const step = ((h2 >>> 16) & 511) | 1;
    for (let i = 0; i < HASH_COUNT; i++) {
      if ((words[base + (p >>> 5)] & (1 << (p & 31))) === 0) return false;
      p = (p + step) & 511;
    }
    return true;
  }

  /** Serialized bytes (a copy). */
  toBytes(): Uint8Array {
    const out = new Uint8Array(4 + this.words.byteLength);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.blockCount, true);
    for (let i = 0; i < this.words.length; i++) view.setUint32(4 + i * 4, this.words[i], true);
    return out;
  }

  static fromBytes(bytes: Uint8Array): BlockedBloom {
    if (bytes.length < 4) throw new DecodeError('blocked bloom: shorter than its header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const blockCount = view.getUint32(0, true);
    if (blockCount < 1 || blockCount > BLOCK_COUNT_MAX)
      throw new DecodeError(`blocked bloom: bad block count ${blockCount}`);
    if (bytes.length !== 4 + blockCount * BLOCK_WORDS * 4)
      throw new DecodeError(`blocked bloom: ${bytes.length} bytes for ${blockCount} blocks`);
    const words = new Uint32Array(blockCount * BLOCK_WORDS);
    for (let i = 0; i < words.length; i++) words[i] = view.getUint32(4 + i * 4, true);
    return new BlockedBloom(blockCount, words);
  }
}
