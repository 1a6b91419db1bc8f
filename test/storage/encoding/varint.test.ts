import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BIG_ABS_MAX,
  ByteReader,
  ByteWriter,
  DecodeError,
  decodeUtf8,
} from '../../../src/storage/encoding/varint.ts';

const SAFE = Number.MAX_SAFE_INTEGER;
const boundaryInts = [
  0,
  1,
  -1,
  63,
  -64,
  64,
  127,
  128,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32,
  2 ** 52,
  -(2 ** 52),
  2 ** 52 + 1,
  -(2 ** 52 + 1),
  SAFE,
  -SAFE,
  SAFE - 1,
  -(SAFE - 1),
];
const safeInt = fc.oneof(
  fc.constantFrom(...boundaryInts),
  fc.maxSafeInteger(),
  fc.integer(),
  fc.integer({ min: -1000, max: 1000 }),
);
const bigInRange = fc.oneof(
  fc.bigInt({ min: -BIG_ABS_MAX, max: BIG_ABS_MAX }),
  fc.constantFrom(
    BIG_ABS_MAX,
    -BIG_ABS_MAX,
    BIG_ABS_MAX - 1n,
    0n,
    2n ** 53n,
    -(2n ** 53n),
    2n ** 63n,
    -(2n ** 63n),
    2n ** 64n,
    -(2n ** 64n),
  ),
);

type Op =
  | { t: 'u8'; v: number }
  | { t: 'varuint'; v: number }
  | { t: 'zigzag'; v: number }
  | { t: 'big'; v: bigint }
  | { t: 'u32'; v: number }
  | { t: 'f64'; v: number }
  | { t: 'string'; v: string }
  | { t: 'bytes'; v: Uint8Array };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((v) => ({ t: 'u8' as const, v })),
  fc
    .oneof(fc.integer({ min: 0, max: 2 ** 53 }), fc.constantFrom(0, 127, 128, 2 ** 28, 2 ** 53, SAFE))
    .map((v) => ({ t: 'varuint' as const, v })),
  safeInt.map((v) => ({ t: 'zigzag' as const, v })),
  bigInRange.map((v) => ({ t: 'big' as const, v })),
  fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ t: 'u32' as const, v })),
  fc.double({ noNaN: true }).map((v) => ({ t: 'f64' as const, v })),
  fc.string({ unit: 'binary', maxLength: 40 }).map((v) => ({ t: 'string' as const, v })),
  fc.uint8Array({ maxLength: 20 }).map((v) => ({ t: 'bytes' as const, v })),
);

function write(w: ByteWriter, o: Op): void {
  switch (o.t) {
    case 'u8':
      w.writeU8(o.v);
      break;
    case 'varuint':
      w.writeVarUint(o.v);
      break;
    case 'zigzag':
      w.writeZigZag(o.v);
      break;
    case 'big':
      w.writeBigZigZag(o.v);
      break;
    case 'u32':
      w.writeU32LE(o.v);
      break;
    case 'f64':
      w.writeF64LE(o.v);
      break;
    case 'string':
      w.writeString(o.v);
      break;
    case 'bytes':
      w.writeVarUint(o.v.length);
      w.writeBytes(o.v);
      break;
  }
}

function read(r: ByteReader, o: Op): unknown {
  switch (o.t) {
    case 'u8':
      return r.readU8();
    case 'varuint':
      return r.readVarUint();
    case 'zigzag':
      return r.readZigZag();
    case 'big':
      return r.readBigZigZag();
    case 'u32':
      return r.readU32LE();
    case 'f64':
      return r.readF64LE();
    case 'string':
      return r.readString();
    case 'bytes':
      return Uint8Array.from(r.readBytes(r.readVarUint()));
  }
}

describe('ByteWriter / ByteReader', () => {
  it('round-trips any sequence of fields exactly', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const w = new ByteWriter(1); // tiny start: exercises growth
        for (const o of ops) write(w, o);
        const r = new ByteReader(w.finish());
        for (const o of ops) expect(read(r, o)).toEqual(o.v);
        expect(r.atEnd()).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('zigzag maps small magnitudes to short varints and handles the safe extremes', () => {
    for (const [v, bytes] of [
      [0, 1],
      [-1, 1],
      [63, 1],
      [-64, 1],
      [64, 2],
      [SAFE, 8],
      [-SAFE, 8],
    ] as const) {
      const w = new ByteWriter();
      w.writeZigZag(v);
      const out = w.finish();
      expect(out.length).toBe(bytes);
      expect(new ByteReader(out).readZigZag()).toBe(v);
    }
  });

  it('bigint zigzag covers the i128 quantity range and rejects beyond it', () => {
    fc.assert(
      fc.property(bigInRange, (v) => {
        const w = new ByteWriter();
        w.writeBigZigZag(v);
        expect(new ByteReader(w.finish()).readBigZigZag()).toBe(v);
      }),
    );
    expect(() => new ByteWriter().writeBigZigZag(BIG_ABS_MAX + 1n)).toThrow(RangeError);
    expect(() => new ByteWriter().writeBigZigZag(-BIG_ABS_MAX - 1n)).toThrow(RangeError);
  });

  it('rejects values outside each writer domain', () => {
    const w = new ByteWriter();
    expect(() => w.writeVarUint(-1)).toThrow(RangeError);
    expect(() => w.writeVarUint(2 ** 53 + 2)).toThrow(RangeError);
    expect(() => w.writeVarUint(1.5)).toThrow(RangeError);
    expect(() => w.writeZigZag(2 ** 53)).toThrow(RangeError);
    expect(() => w.writeZigZag(Number.NaN)).toThrow(RangeError);
    expect(() => w.writeU32LE(2 ** 32)).toThrow(RangeError);
  });

  it('throws DecodeError on any read past the end', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 10 }), fc.nat(), (ops, cutSeed) => {
        const w = new ByteWriter();
        for (const o of ops) write(w, o);
        const bytes = w.finish();
        const cut = cutSeed % bytes.length; // strictly shorter
        const r = new ByteReader(bytes, 0, cut);
        expect(() => {
          for (const o of ops) read(r, o);
        }).toThrow(DecodeError);
      }),
    );
    expect(() => new ByteReader(new Uint8Array(0)).readU8()).toThrow(/read past end/);
    expect(() => new ByteReader(Uint8Array.of(0x80, 0x80)).readVarUint()).toThrow(DecodeError);
  });

  it('rejects over-long and out-of-range varints', () => {
    expect(() => new ByteReader(new Uint8Array(9).fill(0xff)).readVarUint()).toThrow(DecodeError);
    // 2^56 - 1 in 8 bytes: beyond 2^53.
    expect(() =>
      new ByteReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)).readVarUint(),
    ).toThrow(/exceeds/);
    expect(() => new ByteReader(new Uint8Array(20).fill(0xff)).readBigZigZag()).toThrow(DecodeError);
  });

  it('rejects invalid UTF-8 with DecodeError', () => {
    expect(() => decodeUtf8(Uint8Array.of(0x61, 0xff), 0, 2)).toThrow(DecodeError);
    expect(() => decodeUtf8(new Uint8Array(30).fill(0xc3), 0, 30)).toThrow(DecodeError);
  });

  it('keeps a leading U+FEFF (not a byte-order mark here)', () => {
    for (const s of ['\uFEFF', '\uFEFFabc', `\uFEFF${'x'.repeat(40)}`]) {
      const w = new ByteWriter();
      w.writeString(s);
      expect(new ByteReader(w.finish()).readString()).toBe(s);
    }
  });

  it('decodes UTF-8 exactly, with and without the ASCII fast path', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        const bytes = new TextEncoder().encode(s);
        expect(decodeUtf8(bytes, 0, bytes.length)).toBe(s);
      }),
    );
  });
});
