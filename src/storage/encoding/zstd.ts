/**
 * zstd through node:zlib (Node >= 22.15), stored "magicless": the 4-byte frame magic is the
 * same for every frame, so it is stripped on write and put back on read (zstd's own magicless
 * format, done by hand because node:zlib does not expose the format parameter). Saves 4 bytes
 * per compressed stream, which matters for small segments.
 *
 * Invariants:
 * - zstdDecompress(zstdCompress(x, level)) equals x;
 * - decompression output is bounded (DECOMPRESSED_BYTES_MAX), so a bad frame cannot exhaust memory.
 */

import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { DecodeError } from './varint.ts';
import { decodeZstdFrame } from './zstd-decode.ts';

const ZSTD_MAGIC = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd);
/** Largest decompressed stream accepted: far above any chunk a segment writer produces. */
export const DECOMPRESSED_BYTES_MAX = 256 * 1024 * 1024;
export const ZSTD_LEVEL_MIN = 1;
export const ZSTD_LEVEL_MAX = 22;

/** A zstd frame of `data` without its magic number. */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array {
  if (!(Number.isInteger(level) && level >= ZSTD_LEVEL_MIN && level <= ZSTD_LEVEL_MAX)) {
    throw new RangeError(`zstd level ${level} is outside ${ZSTD_LEVEL_MIN}..${ZSTD_LEVEL_MAX}`);
  }
  const frame = zstdCompressSync(data, {
    params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 0 },
  });
  for (let i = 0; i < 4; i++) {
    if (frame[i] !== ZSTD_MAGIC[i]) throw new Error('zstd: frame does not start with the zstd magic');
  }
  return frame.subarray(4);
}

/**
 * Inverse of zstdCompress; a malformed frame throws DecodeError. Frames are decoded in
 * TypeScript (zstd-decode.ts: no per-call setup, which matters for thousands of small chunk
 * streams); a frame it does not handle, or rejects, goes through node:zlib, which has the
 * last word on malformed input. `alloc`, when given, supplies the output buffer of the
 * TypeScript decoder (scratch for callers that consume the bytes at once).
 */
export function zstdDecompress(magicless: Uint8Array, alloc?: (size: number) => Uint8Array): Uint8Array {
  try {
    const out = decodeZstdFrame(magicless, DECOMPRESSED_BYTES_MAX, alloc);
    if (out !== null) return out;
  } catch {
    // Fall through: node:zlib decodes it or reports why not.
  }
  return zlibDecompress(magicless);
}

/** zstd through node:zlib only (the reference the TypeScript decoder is tested against). */
export function zlibDecompress(magicless: Uint8Array): Uint8Array {
  const frame = new Uint8Array(magicless.length + 4);
  frame.set(ZSTD_MAGIC);
  frame.set(magicless, 4);
  try {
    return zstdDecompressSync(frame, { maxOutputLength: DECOMPRESSED_BYTES_MAX });
  } catch (err) {
    throw new DecodeError(
      `zstd: cannot decompress a ${magicless.length}-byte frame: ${(err as Error).message}`,
    );
  }
}
