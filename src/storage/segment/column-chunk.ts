/**
 * One (column, block) chunk: the column's values for the block's rows, as an encoding id and
 * its streams, each stream stored raw or zstd-compressed, whichever is smaller:
 *
 *   u8 encoding | varint stream count | per stream: varint (storedLength << 1 | zstd) | streams
 *
 * The writer tries every candidate encoding of the column kind and keeps the smallest chunk.
 *
 * Invariants:
 * - decodeChunkInto(packChunk(encode(values))) reproduces the values exactly;
 * - a chunk names its encoding, and the reader accepts only the encodings of the column kind.
 */

import type { QuantityColumn } from '../../model/columns.ts';
import type { PackedIds } from '../../model/packed-ids.ts';
import {
  decodeDeltaBitClassInto,
  decodePlanesAt,
  decodePlanesInto,
  decodeRunsAt,
  decodeRunsInto,
  decodeValueDictInto,
  encodeDeltaBitClass,
  encodePlanes,
  encodeRuns,
  encodeValueDict,
  type Streams,
} from '../encoding/int-codec.ts';
import { decodeQuantitiesInto, encodeQuantities } from '../encoding/quantity-codec.ts';
import {
  decodeNullableStrings,
  decodeRadixStringBytes,
  decodeRadixStrings,
  decodeRadixStringsAt,
  decodeStringBytes,
  decodeStrings,
  decodeStringsAt,
  encodeNullableStrings,
  encodeRadixStrings,
  encodeStrings,
} from '../encoding/string-codec.ts';
import { ByteReader, ByteWriter, DecodeError } from '../encoding/varint.ts';
import { zstdCompress, zstdDecompress } from '../encoding/zstd.ts';
import {
  type ColumnKind,
  ENCODINGS_BY_KIND,
  Encoding,
  type EncodingId,
  STREAM_COMPRESS_MIN_BYTES,
} from './segment-format.ts';

/** A stream count no encoding exceeds (guards the parser against a corrupt count). */
const STREAMS_PER_CHUNK_MAX = 8;

export interface Candidate {
  encoding: EncodingId;
  streams: Streams;
  /** Streams known to be incompressible (bit-packed to their entropy): never try zstd. */
  incompressible?: boolean;
}

/** Bytes of one stream kind tried before its payoff is judged. */
const PAYOFF_SAMPLE_BYTES = 16 * 1024;
/** A stream kind that saved less than 1/32 (~3%) of the bytes tried is no longer compressed... */
const PAYOFF_MIN_SAVED_SHARE = 32;
/** ...except every this many chunks, so a change in the data is still noticed. */
const PAYOFF_REPROBE_EVERY = 16;

/**
 * What zstd has saved so far on each stream kind (encoding, stream index) of one column of a
 * segment being written. Some streams are noise to zstd (random event ids packed to their
 * entropy: a flush made ~2,000 such zstd calls, a third of all, and kept none), and each call
 * costs its context setup; once a kind has shown it does not compress, its streams are
 * stored raw without trying. Only the writer's CPU changes: a reader sees raw streams either way.
 */
export class ZstdPayoff {
  /** Per kind: [bytes tried, bytes saved, chunks skipped]. */
  private readonly kinds = new Map<number, [number, number, number]>();

  /** Whether to try zstd on this stream kind now. */
  shouldTry(encoding: EncodingId, stream: number): boolean {
    const k = this.kinds.get(encoding * STREAMS_PER_CHUNK_MAX + stream);
    if (k === undefined || k[0] < PAYOFF_SAMPLE_BYTES || k[1] * PAYOFF_MIN_SAVED_SHARE >= k[0]) return true;
    k[2]++;
    return k[2] % PAYOFF_REPROBE_EVERY === 0;
  }

  record(encoding: EncodingId, stream: number, length: number, storedLength: number): void {
    const key = encoding * STREAMS_PER_CHUNK_MAX + stream;
    let k = this.kinds.get(key);
    if (k === undefined) this.kinds.set(key, (k = [0, 0, 0]));
    k[0] += length;
    k[1] += length - storedLength;
  }
}

/**
 * Serializes a chunk, compressing each stream with zstd when that makes it smaller. Streams
 * whose `tryZstd` entry is false, or shorter than `minBytes`, or of a kind that `payoff` says
 * does not compress, are stored raw without trying.
 */
export function packChunk(
  candidate: Candidate,
  zstdLevel: number,
  tryZstd?: readonly boolean[],
  minBytes = STREAM_COMPRESS_MIN_BYTES,
  payoff?: ZstdPayoff,
): Packed {
  const stored: Uint8Array[] = [];
  const compressed: boolean[] = [];
  const header = new ByteWriter(32);
  header.writeU8(candidate.encoding);
  header.writeVarUint(candidate.streams.length);
  let total = 0;
  candidate.streams.forEach((stream, i) => {
    let bytes = stream;
    let zstd = false;
    if (
      stream.length >= minBytes &&
      tryZstd?.[i] !== false &&
      (payoff === undefined || payoff.shouldTry(candidate.encoding, i))
    ) {
      const z = zstdCompress(stream, zstdLevel);
      if (z.length < stream.length) {
        bytes = z;
        zstd = true;
      }
      payoff?.record(candidate.encoding, i, stream.length, bytes.length);
    }
    header.writeVarUint(bytes.length * 2 + (zstd ? 1 : 0));
    stored.push(bytes);
    compressed.push(zstd);
    total += bytes.length;
  });
  const head = header.finish();
  const out = new Uint8Array(head.length + total);
  out.set(head);
  let pos = head.length;
  for (const bytes of stored) {
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return { bytes: out, compressed };
}

export interface Packed {
  bytes: Uint8Array;
  /** Per stream: stored zstd-compressed. */
  compressed: boolean[];
}

/** zstd level of the probe that ranks candidates: fast, and it ranks like the higher levels. */
const PROBE_ZSTD_LEVEL = 1;

/**
 * Keeps the smallest candidate (first wins ties). A fast level-1 probe ranks the candidates and
 * tells which streams compress at all; only the winner's compressible streams are compressed
 * again at `zstdLevel`. Compressing every candidate (e.g. 100 KB of event-id text) or noise
 * (mantissa bits, packed ids) at the stored level would dominate the cost of writing a segment.
 */
export function packSmallest(
  candidates: readonly Candidate[],
  zstdLevel: number,
  minBytes = STREAM_COMPRESS_MIN_BYTES,
  payoff?: ZstdPayoff,
): Uint8Array {
  if (candidates.length === 0) throw new Error('packSmallest: no candidate encoding');
  // Nothing to rank: one zstd pass at the stored level instead of a probe plus a second pass
  // (each zstd call costs ~50 µs of context setup, the bulk of encoding small blocks).
  if (candidates.length === 1) {
    const only = candidates[0];
    const tryZstd = only.incompressible ? only.streams.map(() => false) : undefined;
    return packChunk(only, zstdLevel, tryZstd, minBytes, payoff).bytes;
  }
  let best = candidates[0];
  let bestProbe: Packed | null = null;
  for (const c of candidates) {
    const probe = packChunk(c, PROBE_ZSTD_LEVEL, undefined, minBytes, payoff);
    if (bestProbe === null || probe.bytes.length < bestProbe.bytes.length) {
      best = c;
      bestProbe = probe;
    }
  }
  const probe = bestProbe as Packed;
  if (zstdLevel === PROBE_ZSTD_LEVEL || !probe.compressed.includes(true)) return probe.bytes;
  const packed = packChunk(best, zstdLevel, probe.compressed, minBytes).bytes;
  return packed.length <= probe.bytes.length ? packed : probe.bytes;
}

/** The stream header words of the chunk being unpacked. */
const streamWords = new Float64Array(STREAMS_PER_CHUNK_MAX);

/** Decompressed streams share this scratch; larger ones get their own buffer. */
const STREAM_SCRATCH_MAX = 1 << 20;
let streamScratch = new Uint8Array(1 << 16);
let streamScratchUsed = 0;

/**
 * Room for one decompressed stream of the chunk being unpacked. Streams only live until the
 * chunk's decoder returns (every decoder copies what it keeps: typed arrays, strings), and
 * decoding is synchronous, so the next unpackChunk reuses the space instead of allocating.
 */
function streamBuffer(size: number): Uint8Array {
  if (size > STREAM_SCRATCH_MAX) return new Uint8Array(size);
  if (streamScratchUsed + size > streamScratch.length) {
    // Earlier streams of this chunk keep the old buffer alive until they are done.
    streamScratch = new Uint8Array(
      Math.min(STREAM_SCRATCH_MAX * 2, Math.max(streamScratch.length * 2, size)),
    );
    streamScratchUsed = 0;
  }
  const out = streamScratch.subarray(streamScratchUsed, streamScratchUsed + size);
  streamScratchUsed += size;
  return out;
}

/**
 * Parses a chunk and decompresses its streams; checks the encoding belongs to `kind`. The
 * streams are valid until the next call (decompressed ones live in shared scratch).
 */
export function unpackChunk(chunk: Uint8Array, kind: ColumnKind): { encoding: EncodingId; streams: Streams } {
  streamScratchUsed = 0;
  const reader = new ByteReader(chunk);
  const encoding = reader.readU8() as EncodingId;
  if (!ENCODINGS_BY_KIND[kind].includes(encoding))
    throw new DecodeError(`encoding ${encoding} is not valid for a ${kind} column`);
  const count = reader.readVarUint();
  if (count > STREAMS_PER_CHUNK_MAX) throw new DecodeError(`chunk declares ${count} streams`);
  const lengths = streamWords;
  for (let i = 0; i < count; i++) lengths[i] = reader.readVarUint();
  const streams: Streams = new Array<Uint8Array>(count);
  for (let i = 0; i < count; i++) {
    const word = lengths[i];
    const bytes = reader.readBytes(Math.floor(word / 2));
    const stream = word % 2 === 1 ? zstdDecompress(bytes, streamBuffer) : bytes;
    // Plain Uint8Array views only (node:zlib returns a Buffer): decoders stay monomorphic.
    streams[i] = Buffer.isBuffer(stream)
      ? new Uint8Array(stream.buffer, stream.byteOffset, stream.length)
      : stream;
  }
  if (!reader.atEnd()) throw new DecodeError(`chunk has ${reader.remaining} trailing bytes`);
  return { encoding, streams };
}

// ---- candidates per column kind ----------------------------------------------------------

export function eventIdCandidates(ids: readonly string[]): Candidate[] {
  const candidates: Candidate[] = [];
  const radix = encodeRadixStrings(ids);
  // Radix packing stores random ids at their entropy, so plain strings + zstd is not tried
  // (it was the most expensive zstd call of a flush); zstd over the radix streams still
  // catches sequential ids.
  if (radix !== null) return [{ encoding: Encoding.RADIX_STRINGS, streams: radix }];
  candidates.push({ encoding: Encoding.STRINGS, streams: encodeStrings(ids) });
  return candidates;
}

/** Small non-negative integers: `kind` and stored dictionary codes. */
export function smallIntCandidates(values: Uint8Array | Uint32Array): Candidate[] {
  return [
    { encoding: Encoding.RUNS, streams: encodeRuns(values) },
    { encoding: Encoding.PLANES, streams: encodePlanes(values) },
  ];
}

export function nullableStringCandidates(values: readonly (string | null)[]): Candidate[] {
  return [{ encoding: Encoding.NULLABLE_STRINGS, streams: encodeNullableStrings(values) }];
}

/** Integers in [0, 2^53). A value dictionary is tried only when at most a quarter of the values are distinct. */
export function timestampCandidates(values: Float64Array): Candidate[] {
  const candidates: Candidate[] = [
    { encoding: Encoding.DELTA_BIT_CLASS, streams: encodeDeltaBitClass(values) },
  ];
  const dict = encodeValueDict(values, Math.max(16, values.length >> 2));
  if (dict !== null) candidates.push({ encoding: Encoding.VALUE_DICT, streams: dict });
  return candidates;
}

export function quantityCandidates(col: QuantityColumn, start: number, end: number): Candidate[] {
  return [{ encoding: Encoding.QUANTITY_BIT_CLASS, streams: encodeQuantities(col, start, end) }];
}

// ---- decoders (one per column kind) ------------------------------------------------------

export function decodeEventIds(chunk: Uint8Array, count: number): string[] {
  const { encoding, streams } = unpackChunk(chunk, 'event_id');
  return encoding === Encoding.RADIX_STRINGS
    ? decodeRadixStrings(streams, count)
    : decodeStrings(streams, count);
}

/** The event ids of a chunk as UTF-8 bytes (no JS strings): for the export. */
export function decodeEventIdBytes(chunk: Uint8Array, count: number): PackedIds {
  const { encoding, streams } = unpackChunk(chunk, 'event_id');
  return encoding === Encoding.RADIX_STRINGS
    ? decodeRadixStringBytes(streams, count)
    : decodeStringBytes(streams, count);
}

/** The event ids at `rows` of a chunk of `count` rows, without building the other rows' strings. */
export function decodeEventIdsAt(chunk: Uint8Array, count: number, rows: ArrayLike<number>): string[] {
  const { encoding, streams } = unpackChunk(chunk, 'event_id');
  return encoding === Encoding.RADIX_STRINGS
    ? decodeRadixStringsAt(streams, count, rows)
    : decodeStringsAt(streams, count, rows);
}

/** Fills `out` with values below `limit`; `nullShift`: stored code + 1, 0 = null (NULL_CODE). */
export function decodeSmallIntsInto(
  chunk: Uint8Array,
  kind: 'kind' | 'dict',
  out: Uint8Array | Uint32Array,
  limit: number,
  nullShift = false,
): void {
  const { encoding, streams } = unpackChunk(chunk, kind);
  if (encoding === Encoding.RUNS) decodeRunsInto(streams, out, limit, nullShift);
  else decodePlanesInto(streams, out, limit, nullShift);
}

/** The value decodeSmallIntsInto would put at `row` of a chunk of `count` values. */
export function decodeSmallIntAt(
  chunk: Uint8Array,
  kind: 'kind' | 'dict',
  count: number,
  row: number,
  limit: number,
  nullShift = false,
): number {
  const { encoding, streams } = unpackChunk(chunk, kind);
  return encoding === Encoding.RUNS
    ? decodeRunsAt(streams, count, row, limit, nullShift)
    : decodePlanesAt(streams, count, row, limit, nullShift);
}

export function decodeNullableStringChunk(chunk: Uint8Array, count: number): (string | null)[] {
  const { streams } = unpackChunk(chunk, 'nullable_string');
  return decodeNullableStrings(streams, count);
}

export function decodeTimestampsInto(chunk: Uint8Array, out: Float64Array): void {
  const { encoding, streams } = unpackChunk(chunk, 'timestamp');
  if (encoding === Encoding.DELTA_BIT_CLASS) decodeDeltaBitClassInto(streams, out);
  else decodeValueDictInto(streams, out);
}

export function decodeQuantityChunkInto(
  chunk: Uint8Array,
  values: Float64Array,
  offset: number,
  count: number,
  big: Map<number, bigint>,
): void {
  const { streams } = unpackChunk(chunk, 'quantity');
  decodeQuantitiesInto(streams, values, offset, count, big);
}
