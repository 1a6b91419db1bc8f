import { PAYLOAD_HASH_WORDS } from '../../src/model/payload-hash.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockedBloom } from '../../src/storage/encoding/blocked-bloom.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import {
  decodeIdFilterFile,
  encodeIdFilterFile,
  ID_FILTER_DIR,
  IdFilter,
  type IdHashes,
} from '../../src/storage/id-filter.ts';
import {
  buildIdIndex,
  decodeIdIndexChunk,
  encodeIdIndexChunk,
  rowBitsOf,
  idIndexChunkBits,
  idIndexPayloadAt,
  idIndexRowAt,
  PAYLOAD_BYTES_PER_ENTRY,
  searchIdIndexChunk,
  searchIdIndexEntries,
  storedHashShift,
} from '../../src/storage/id-index.ts';
import { rng } from '../support/events.ts';

function randomHashes(seed: number, n: number): IdHashes {
  const next = rng(seed);
  const h1 = new Uint32Array(n);
  const h2 = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    h1[i] = Math.floor(next() * 2 ** 32);
    h2[i] = Math.floor(next() * 2 ** 32);
  }
  return { h1, h2 };
}

function misses(filter: { mayContain(h1: number, h2: number): boolean }, keys: IdHashes): number {
  let n = 0;
  for (let i = 0; i < keys.h1.length; i++) if (!filter.mayContain(keys.h1[i], keys.h2[i])) n++;
  return n;
}

describe('blocked Bloom filter', () => {
  it('never answers no for a key it holds, and survives serialization', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 2 ** 32 - 1 })), { maxLength: 500 }),
        fc.integer({ min: 1, max: 20 }),
        (keys, bitsPerKey) => {
          const f = BlockedBloom.create(keys.length, bitsPerKey);
          for (const [a, b] of keys) f.add(a, b);
          const back = BlockedBloom.fromBytes(f.toBytes());
          for (const [a, b] of keys) {
            expect(f.mayContain(a, b)).toBe(true);
            expect(back.mayContain(a, b)).toBe(true);
          }
        },
      ),
    );
  });

  it('at 15 bits per key answers fewer than 0.5% false positives', () => {
    const keys = randomHashes(1, 200_000);
    const f = BlockedBloom.create(keys.h1.length, 15);
    f.addAll(keys.h1, keys.h2);
    const others = randomHashes(2, 200_000);
    const falsePositives = others.h1.length - misses(f, others);
    expect(falsePositives / others.h1.length).toBeLessThan(0.005);
    // Filled to the growth threshold (10 bits per key), still under 2%.
    const full = BlockedBloom.create(200_000, 10);
    full.addAll(keys.h1, keys.h2);
    const rate = (others.h1.length - misses(full, others)) / others.h1.length;
    console.log(`false positives at 15 bits/key ${falsePositives / others.h1.length}, at 10 ${rate}`);
    expect(rate).toBeLessThan(0.02);
  });
});

describe('id filter file', () => {
  it('round-trips, and any flipped bit or cut makes it invalid', () => {
    const f = BlockedBloom.create(100, 14);
    const keys = randomHashes(3, 100);
    f.addAll(keys.h1, keys.h2);
    const bytes = encodeIdFilterFile(f, 100, [4, 9, 2 ** 40]);
    const back = decodeIdFilterFile(bytes);
    expect(back?.keys).toBe(100);
    expect(back?.covered).toEqual([4, 9, 2 ** 40]);
    expect(back && misses(back.filter, keys)).toBe(0);
    for (let i = 0; i < bytes.length; i += 7) {
      const damaged = Uint8Array.from(bytes);
      damaged[i] ^= 1 << (i % 8);
      expect(decodeIdFilterFile(damaged)).toBeNull();
    }
    expect(decodeIdFilterFile(bytes.subarray(0, bytes.length - 1))).toBeNull();
  });
});

/** An index of random hashes and one chunk's entries [from, to) of it, as the writer cuts them. */
const chunkCase = fc
  .tuple(fc.array(fc.nat({ max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 3000 }), fc.nat({ max: 2999 }))
  .map(([hashes, start]) => {
    const n = hashes.length;
    const from = Math.min(start, n - 1);
    return {
      n,
      index: buildIdIndex(Uint32Array.from(hashes)),
      from,
      to: Math.min(n, from + 2048),
      shift: storedHashShift(n),
    };
  });

describe('stored id index chunks', () => {
  it('decode to the shifted hashes and rows they were encoded from', () => {
    fc.assert(
      fc.property(chunkCase, ({ n, index, from, to, shift }) => {
        const bytes = encodeIdIndexChunk(index, from, to, rowBitsOf(n), shift);
        const back = decodeIdIndexChunk(bytes, index.hashes[from] >>> shift, to - from, rowBitsOf(n));
        expect([...back.rows]).toEqual([...index.rows.subarray(from, to)]);
        expect([...back.hashes]).toEqual([...index.hashes.subarray(from, to)].map((h) => h >>> shift));
        // A search finds exactly the rows of its key, for keys present and absent.
        for (const k of [from, Math.floor((from + to) / 2), to - 1]) {
          const key = index.hashes[k] >>> shift;
          const expected = [...back.rows].filter((_, i) => back.hashes[i] === key);
          expect(searchIdIndexChunk(bytes, back.hashes[0], to - from, rowBitsOf(n), key)).toEqual(expected);
          expect(searchIdIndexChunk(bytes, back.hashes[0], to - from, rowBitsOf(n), key + 0.5)).toEqual([]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('carry the payload hash words of each entry (format 3), read back by entry', () => {
    fc.assert(
      fc.property(chunkCase, ({ n, index, from, to, shift }) => {
        // Four words per row, distinct per row, the top bit set on some to catch sign slips.
        const payload = Uint32Array.from(
          { length: n * PAYLOAD_HASH_WORDS },
          (_, i) => (i * 2654435761) >>> 0,
        );
        const count = to - from;
        const rowBits = rowBitsOf(n);
        const bytes = encodeIdIndexChunk(index, from, to, rowBits, shift, payload);
        const plain = encodeIdIndexChunk(index, from, to, rowBits, shift);
        expect(bytes.length).toBe(plain.length + count * PAYLOAD_BYTES_PER_ENTRY);
        const bits = idIndexChunkBits(bytes, count, true);
        expect([...bits]).toEqual([...plain]);
        const firstKey = index.hashes[from] >>> shift;
        for (const k of [from, Math.floor((from + to) / 2), to - 1]) {
          const key = index.hashes[k] >>> shift;
          const entries = searchIdIndexEntries(bits, firstKey, count, rowBits, key);
          expect(entries.length).toBeGreaterThan(0);
          for (const e of entries) {
            const row = idIndexRowAt(bits, e, rowBits);
            expect(row).toBe(index.rows[from + e]);
            const at = row * PAYLOAD_HASH_WORDS;
            expect(idIndexPayloadAt(bytes, e)).toEqual([payload[at], payload[at + 1]]);
          }
        }
        expect(() => idIndexChunkBits(bytes.subarray(0, count * 8 - 1), count, true)).toThrow(RangeError);
      }),
      { numRuns: 100 },
    );
  });
});

describe('id filter', () => {
  const live = (m: Map<number, IdHashes>) => [...m].map(([id, h]) => ({ id, rows: h.h1.length }));

  it('grows by a rebuild that misses nothing flushed meanwhile, writes itself, and reopens from the file', async () => {
    const fs = new SimFileSystem({ seed: 1 });
    await fs.mkdirp('/db');
    const segments = new Map<number, IdHashes>();
    let reads = 0;
    let gate: Promise<void> = Promise.resolve();
    const hashesOf = async (id: number): Promise<IdHashes> => {
      reads++;
      await gate;
      const h = segments.get(id);
      if (h === undefined) throw new Error(`no segment ${id}`);
      return h;
    };
    const filter = await IdFilter.open(fs, '/db', [], hashesOf, 100_000);
    for (let id = 1; id <= 6; id++) {
      const h = randomHashes(10 + id, 400_000);
      segments.set(id, h);
      filter.addSegment(id, h);
    }
    expect(filter.wantsGrowth).toBe(true);
    const before = filter.stats.bytes;
    let open!: () => void;
    gate = new Promise((resolve) => {
      open = resolve;
    });
    const upkeep = filter.maintain(
      () => ({ segments: live(segments), release: () => undefined }),
      hashesOf,
      () => new Set(segments.keys()),
    );
    // A flush and a merge commit while the rebuild waits on its reads.
    while (reads === 0) await Promise.resolve();
    const late = randomHashes(99, 50_000);
    segments.set(7, late);
    filter.addSegment(7, late);
    filter.noteMerge(8, [1, 2]);
    segments.set(8, { h1: new Uint32Array(0), h2: new Uint32Array(0) });
    open();
    await upkeep;
    // Segment 7 was never read: the rebuild got its ids from the flush itself.
    expect(reads).toBe(6);
    expect(filter.stats.rebuilds).toBe(1);
    expect(filter.stats.bytes).toBeGreaterThan(before);
    expect(filter.stats.writes).toBe(1);
    for (const h of segments.values()) expect(misses(filter, h)).toBe(0);

    // Reopen: the file covers every live segment, so no segment is read again.
    reads = 0;
    const reopened = await IdFilter.open(fs, '/db', live(segments), hashesOf, 100_000);
    expect(reads).toBe(0);
    for (const h of segments.values()) expect(misses(reopened, h)).toBe(0);
    // Nothing new since the file: persisting (as close does) writes nothing.
    await reopened.persist(() => new Set(segments.keys()));
    expect(reopened.stats.writes).toBe(0);

    // A segment the file does not cover is read at open.
    const newer = randomHashes(100, 1000);
    segments.set(9, newer);
    const third = await IdFilter.open(fs, '/db', live(segments), hashesOf, 100_000);
    expect(reads).toBe(1);
    expect(misses(third, newer)).toBe(0);
    await third.persist(() => new Set(segments.keys()));
    expect(third.stats.writes).toBe(1);
  });

  it('ignores a damaged file and reads every segment instead', async () => {
    const fs = new SimFileSystem({ seed: 2 });
    await fs.mkdirp('/db');
    const segments = new Map<number, IdHashes>([[1, randomHashes(1, 5000)]]);
    const hashesOf = async (id: number) => segments.get(id) as IdHashes;
    const filter = await IdFilter.open(fs, '/db', live(segments), hashesOf);
    await filter.persist(() => new Set(segments.keys()));
    segments.set(2, randomHashes(2, 5000));
    filter.addSegment(2, segments.get(2) as IdHashes);
    await filter.persist(() => new Set(segments.keys()));
    const names = await fs.readdir(`/db/${ID_FILTER_DIR}`);
    expect(names.length).toBe(1);
    const newest = `/db/${ID_FILTER_DIR}/${names[names.length - 1]}`;
    const bytes = await fs.readFile(newest);
    bytes[100] ^= 4;
    await fs.writeFile(newest, bytes, { sync: true });
    const reopened = await IdFilter.open(fs, '/db', live(segments), hashesOf);
    for (const h of segments.values()) expect(misses(reopened, h)).toBe(0);
    for (const name of await fs.readdir(`/db/${ID_FILTER_DIR}`))
      await fs.unlink(`/db/${ID_FILTER_DIR}/${name}`);
    const fresh = await IdFilter.open(fs, '/db', live(segments), hashesOf);
    for (const h of segments.values()) expect(misses(fresh, h)).toBe(0);
  });
});
