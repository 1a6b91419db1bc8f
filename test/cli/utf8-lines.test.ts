/**
 * The ingest command's line reader: lines split at "\n" whatever the chunk boundaries, each
 * line valid UTF-8 or reported with its first bad byte, never decoded with U+FFFD.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Line, invalidUtf8Offset, utf8Lines } from '../../src/cli/utf8-lines.ts';

const fatal = new TextDecoder('utf-8', { fatal: true });

/** What each line must be: split at "\n", one "\r" dropped, decoded strictly. */
function reference(bytes: Uint8Array): Line[] {
  const lines: Line[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    const next = end < 0 ? bytes.length : end + 1;
    if (end < 0) end = bytes.length;
    const content = bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
    try {
      lines.push(fatal.decode(content));
    } catch {
      const at = invalidUtf8Offset(content);
      lines.push({ byteOffset: at, byte: content[at] });
    }
    start = next;
  }
  return lines;
}

async function readAll(chunks: (Uint8Array | string)[]): Promise<Line[]> {
  const out: Line[] = [];
  for await (const lines of utf8Lines(
    Readable.from(chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c)))),
  ))
    out.push(...lines);
  return out;
}

/** `bytes` cut at the given points (sorted, deduplicated). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let start = 0;
  for (const p of [...at, bytes.length]) {
    parts.push(bytes.subarray(start, p));
    start = p;
  }
  return parts;
}

const byteArb = fc.oneof(
  fc.constantFrom(
    0x0a,
    0x0d,
    0x41,
    0x7b,
    0x22,
    0xff,
    0xfe,
    0xc0,
    0xc3,
    0xa9,
    0xed,
    0xa0,
    0xf0,
    0x9f,
    0x98,
    0x80,
    0xf4,
    0x90,
  ),
  fc.integer({ min: 0, max: 255 }),
);

describe('invalidUtf8Offset', () => {
  it('agrees with a fatal TextDecoder on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.array(byteArb, { maxLength: 40 }), (a, b) => {
        for (const bytes of [a, Uint8Array.from(b)]) {
          let valid = true;
          try {
            fatal.decode(bytes);
          } catch {
            valid = false;
          }
          const at = invalidUtf8Offset(bytes);
          expect(at === -1).toBe(valid);
          // The bytes before the reported offset are valid.
          if (at >= 0) expect(() => fatal.decode(bytes.subarray(0, at))).not.toThrow();
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuses overlong forms, encoded surrogates and code points above U+10FFFF', () => {
    for (const bad of [
      [0xc0, 0x80],
      [0xe0, 0x80, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5],
      [0xc3],
    ])
      expect(invalidUtf8Offset(Uint8Array.from([0x61, ...bad]))).toBe(1);
    expect(invalidUtf8Offset(Buffer.from('é😀\u{10ffff}'))).toBe(-1);
  });
});

describe('utf8Lines', () => {
  it('matches the reference for any bytes cut into any chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(byteArb, { maxLength: 120 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (b, points) => {
          const bytes = Uint8Array.from(b);
          expect(await readAll(cut(bytes, points))).toEqual(reference(bytes));
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('rejects the invalid line only, and keeps the line count', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"a":1}\r\n'),
      Buffer.from('{"account_id":"acct'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}\n\n{"b":"é"}'),
    ]);
    expect(await readAll([bytes])).toEqual(['{"a":1}', { byteOffset: 19, byte: 0xff }, '', '{"b":"é"}']);
  });

  it('keeps a U+FFFD sent as valid UTF-8, and reads string chunks as their UTF-8', async () => {
    expect(await readAll(['x\ufffdy\n', 'é\n'])).toEqual(['x\ufffdy', 'é']);
    expect(await readAll([])).toEqual([]);
    expect(await readAll([Buffer.from('\n')])).toEqual(['']);
  });

  it('joins a line longer than many chunks', async () => {
    const long = 'x'.repeat(200_000);
    const bytes = Buffer.from(`${long}\nshort\n${long}`);
    expect(await readAll(cut(bytes, [1, 65_536, 131_072, 200_000, 200_003, 300_000]))).toEqual([
      long,
      'short',
      long,
    ]);
  });
});
