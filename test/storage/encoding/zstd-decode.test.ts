import { constants, createZstdCompress, zstdCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../src/storage/encoding/varint.ts';
import { zlibDecompress, zstdDecompress } from '../../../src/storage/encoding/zstd.ts';
import { decodeZstdFrame } from '../../../src/storage/encoding/zstd-decode.ts';

/** A magicless frame as zstdCompress writes it, with or without the content checksum. */
function frame(data: Uint8Array, level: number, checksum = false): Uint8Array {
  const f = zstdCompressSync(data, {
    params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 },
  });
  return f.subarray(4);
}

/** Byte shapes that exercise every literal and sequence mode: noise, skewed symbols, repeats, runs. */
const shaped = fc
  .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 300_000 }), fc.integer())
  .map(([kind, n, seed]) => {
    let s = seed >>> 0 || 1;
    const rnd = (): number => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296;
    };
    const d = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (kind === 0) d[i] = rnd() * 256;
      else if (kind === 1) d[i] = Math.floor(-Math.log(rnd() + 1e-9) * 3);
      else if (kind === 2) d[i] = i > 16 && rnd() < 0.7 ? d[i - 1 - Math.floor(rnd() * 16)] : rnd() * 20;
      else if (kind === 3) d[i] = (i >> 5) & 3;
      else if (kind === 4) d[i] = rnd() < 0.01 ? rnd() * 256 : 7;
      else d[i] = i > 1000 && rnd() < 0.9 ? d[i - 1000] : rnd() * 256;
    }
    return d;
  });

describe('zstd frame decoder', () => {
  it('decodes what zstd writes, at every level, exactly as node:zlib does', () => {
    fc.assert(
      fc.property(shaped, fc.constantFrom(-5, 1, 3, 9, 19), fc.boolean(), (data, level, checksum) => {
        const f = frame(data, level, checksum);
        const out = decodeZstdFrame(f, 1 << 28);
        expect(out).not.toBeNull();
        expect(Buffer.compare(out as Uint8Array, data)).toBe(0);
        expect(Buffer.compare(zstdDecompress(f), zlibDecompress(f))).toBe(0);
      }),
      { numRuns: 120 },
    );
  });

  it('decodes small arbitrary inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.constantFrom(1, 9, 19), (data, level) => {
        expect(Buffer.compare(decodeZstdFrame(frame(data, level), 1 << 28) as Uint8Array, data)).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('leaves frames without a content size, or above the limit, to node:zlib', async () => {
    const data = new Uint8Array(50_000).map((_, i) => (i * 7) % 11);
    const chunks: Buffer[] = [];
    const z = createZstdCompress();
    z.on('data', (c: Buffer) => chunks.push(c));
    const done = new Promise((resolve) => z.on('end', resolve));
    z.write(data.subarray(0, 20_000));
    z.end(data.subarray(20_000));
    await done;
    const streamed = Buffer.concat(chunks).subarray(4);
    expect(decodeZstdFrame(streamed, 1 << 28)).toBeNull();
    expect(Buffer.compare(zstdDecompress(streamed), data)).toBe(0);
    expect(decodeZstdFrame(frame(data, 3), 1000)).toBeNull();
  });

  it('rejects damaged frames; zstdDecompress then reports DecodeError', () => {
    const f = frame(
      new Uint8Array(5000).map((_, i) => (i * i) % 251),
      9,
    );
    let rejected = 0;
    for (let i = 0; i < f.length; i++) {
      for (const bit of [1, 16, 128]) {
        const bad = Uint8Array.from(f);
        bad[i] ^= bit;
        let ours: Uint8Array | null | 'threw';
        try {
          ours = decodeZstdFrame(bad, 1 << 28);
        } catch {
          ours = 'threw';
        }
        let reference: Uint8Array | 'threw';
        try {
          reference = zlibDecompress(bad);
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
          reference = 'threw';
        }
        // Whatever the TypeScript decoder accepts, node:zlib decodes to the same bytes.
        if (ours instanceof Uint8Array)
          expect(reference === 'threw' ? null : Buffer.compare(ours, reference)).toBe(0);
        else rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
    expect(() => zstdDecompress(Uint8Array.of(1, 2, 3, 4, 5))).toThrow(DecodeError);
  });
});
