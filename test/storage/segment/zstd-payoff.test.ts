import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packChunk, unpackChunk, ZstdPayoff } from '../../../src/storage/segment/column-chunk.ts';
import { Encoding } from '../../../src/storage/segment/segment-format.ts';

/** A one-stream event-id chunk candidate over `bytes`. */
const candidate = (bytes: Uint8Array) => ({
  encoding: Encoding.STRINGS,
  streams: [bytes, new Uint8Array(0)],
});

function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('ZstdPayoff', () => {
  it('stops trying zstd on a stream kind that does not compress, re-probing now and then', () => {
    const payoff = new ZstdPayoff();
    let tries = 0;
    const chunks = 200;
    for (let i = 0; i < chunks; i++) {
      if (payoff.shouldTry(Encoding.STRINGS, 0)) {
        tries++;
        payoff.record(Encoding.STRINGS, 0, 2048, 2048);
      }
    }
    // 16 KiB of 2 KiB streams judge the kind; then one chunk in 16 is tried again.
    expect(tries).toBeLessThan(8 + chunks / 16 + 1);
    expect(tries).toBeGreaterThanOrEqual(8);
    // Another stream of the same encoding is judged on its own.
    expect(payoff.shouldTry(Encoding.STRINGS, 1)).toBe(true);
  });

  it('keeps compressing a kind that pays off', () => {
    const payoff = new ZstdPayoff();
    for (let i = 0; i < 100; i++) {
      expect(payoff.shouldTry(Encoding.RUNS, 0)).toBe(true);
      payoff.record(Encoding.RUNS, 0, 4096, 1000);
    }
  });

  it('chunks packed with it decode to the same streams, and noise ends up raw', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            compressible: fc.boolean(),
            length: fc.integer({ min: 0, max: 5000 }),
            seed: fc.integer(),
          }),
          {
            minLength: 1,
            maxLength: 40,
          },
        ),
        (specs) => {
          const payoff = new ZstdPayoff();
          for (const { compressible, length, seed } of specs) {
            const bytes = compressible ? new Uint8Array(length).fill(seed & 0xff) : noise(length, seed);
            const packed = packChunk(candidate(bytes), 1, undefined, 64, payoff);
            const { streams } = unpackChunk(packed.bytes, 'event_id');
            expect(Buffer.from(streams[0]).equals(Buffer.from(bytes))).toBe(true);
            if (!compressible) expect(packed.compressed[0]).toBe(false);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
