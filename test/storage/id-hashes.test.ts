/**
 * Id hashing for the database filter: the worker thread and the inline path give the hashes
 * hash128 gives each id, in order, over a span of radix-coded and plain chunks; a damaged
 * chunk fails in both instead of giving hashes.
 */
import { describe, expect, it } from 'vitest';
import { hash128 } from '../../src/model/hash.ts';
import { crc32c } from '../../src/storage/encoding/crc32c.ts';
import { hashEventIds, holdIdHashing, type IdChunkPart } from '../../src/storage/id-hashes.ts';
import { eventIdCandidates, packSmallest } from '../../src/storage/segment/column-chunk.ts';
import { rng } from '../support/events.ts';

function span(blocks: string[][]): { bytes: Uint8Array; parts: IdChunkPart[] } {
  const chunks = blocks.map((ids) => packSmallest(eventIdCandidates(ids), 1));
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  const parts: IdChunkPart[] = [];
  let at = 0;
  chunks.forEach((c, k) => {
    bytes.set(c, at);
    parts.push({ at, length: c.length, crc: crc32c(c), rows: blocks[k].length });
    at += c.length;
  });
  return { bytes, parts };
}

describe('event id hashing', () => {
  const next = rng(7);
  const base62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const randomId = () => Array.from({ length: 20 }, () => base62[Math.floor(next() * 62)]).join('');
  // Equal-length random ids (radix coded), then ids of mixed lengths and non-ASCII (plain).
  const blocks = [
    Array.from({ length: 3_000 }, randomId),
    Array.from({ length: 2_000 }, randomId),
    Array.from({ length: 500 }, (_, i) => `evt-${i}-${'é'.repeat(i % 3)}`),
  ];
  const expected = blocks.flat().map((id) => hash128(id));

  it('gives hash128 of every id in order, inline and in the worker', async () => {
    const release = holdIdHashing();
    try {
      for (const inline of [true, false]) {
        const got = await hashEventIds(span(blocks), { inline });
        expect(got.h1.length).toBe(expected.length);
        expect(Array.from(got.h1)).toEqual(expected.map((h) => h.h1));
        expect(Array.from(got.h2)).toEqual(expected.map((h) => h.h2));
      }
    } finally {
      release();
    }
  });

  it('refuses a damaged chunk in both paths', async () => {
    for (const inline of [true, false]) {
      const s = span(blocks);
      s.bytes[s.parts[1].at + 10] ^= 1;
      await expect(hashEventIds(s, { inline })).rejects.toThrow(/checksum mismatch/);
    }
  });
});
