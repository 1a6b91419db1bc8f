/**
 * The rollup segment file (`.rseg`): rollup rows (rollup-rows.ts) of one level, in blocks of
 * columns encoded with the raw segment's codecs (column-chunk.ts). Layout, documented in
 * docs/segment-format.md:
 *
 *   "URSG" | block 0 | block 1 | ... | footer (zstd JSON) | u32 footer length | u32 footer
 *   crc32c | u8 format version | "URSG"
 *
 * A block is its 15 column chunks back to back; the footer holds, per block, its offset, chunk
 * lengths, CRC32C, row count and account/bucket bounds, plus the file's dictionaries.
 *
 * Invariants:
 * - every byte is covered by a CRC32C: blocks by the footer, the footer by the trailer, the
 *   file by its manifest entry; a block is verified before it is decoded;
 * - rows keep their order (account, then bucket): a block's account bounds let a reader skip it.
 */
import { assert } from '../errors.ts';
import { crc32c, crc32cCombine } from '../storage/encoding/crc32c.ts';
import { DecodeError } from '../storage/encoding/varint.ts';
import { zlibDecompress, zstdCompress, zstdDecompress } from '../storage/encoding/zstd.ts';
import type { RollupLevel } from '../storage/manifest.ts';
import { bitLength, encodePlanes } from '../storage/encoding/int-codec.ts';
import { encodeQuantities } from '../storage/encoding/quantity-codec.ts';
import { ByteWriter } from '../storage/encoding/varint.ts';
import {
  decodeQuantityChunkInto,
  decodeSmallIntsInto,
  decodeTimestampsInto,
  packChunk,
} from '../storage/segment/column-chunk.ts';
import { Encoding, type EncodingId, KIND_LIMIT } from '../storage/segment/segment-format.ts';
import { type DictColumn, NULL_CODE, type QuantityColumn } from '../model/columns.ts';
import {
  ranksOf,
  ROLLUP_DICT_COLUMNS,
  runEnd,
  type RollupDictColumn,
  type RollupRows,
  slotOf,
  textOrder,
} from './rollup-rows.ts';

export const ROLLUP_MAGIC = Uint8Array.of(0x55, 0x52, 0x53, 0x47);
export const ROLLUP_FORMAT_VERSION = 1;
export const ROLLUP_TRAILER_BYTES = 13;
export const ROLLUP_BLOCK_ROWS = 4096;
/**
 * Rows per block of the levels one account's question reads whole (its month, its meter
 * series): an account has hundreds of rows there, and a first read decodes whole blocks.
 */
export const ROLLUP_SMALL_BLOCK_ROWS = 1024;

export function rollupBlockRows(level: RollupLevel): number {
  return level === 'hour' || level === 'day' ? ROLLUP_BLOCK_ROWS : ROLLUP_SMALL_BLOCK_ROWS;
}
/** Rollups are rebuilt from raw at will: a fast level (measured in docs/rollups.md). */
const ZSTD_LEVEL = 3;
const CHUNKS_PER_BLOCK = 15;

export interface RollupBlockMeta {
  offset: number;
  length: number;
  /** CRC32C of the stored bytes. */
  crc32c: number;
  /** Stored as one zstd frame of `raw_length` bytes (else as is). */
  zstd: boolean;
  raw_length: number;
  rows: number;
  /** Lengths of the 15 chunks inside the (decompressed) block. */
  chunks: number[];
  min_account: string;
  max_account: string;
  /** Bucket starts. */
  min_bucket: number;
  max_bucket: number;
}

export interface RollupFooter {
  format: number;
  level: RollupLevel;
  rows: number;
  /** Event times (first/last) over the file; 0/0 when empty. */
  min_ts: number;
  max_ts: number;
  dicts: Record<RollupDictColumn, string[]>;
  blocks: RollupBlockMeta[];
}

export interface EncodedRollup {
  bytes: Uint8Array;
  crc32c: number;
  rows: number;
  min_ts: number;
  max_ts: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Length of a LEB128 varint. */
function varLen(value: number): number {
  let n = 1;
  for (let v = value; v >= 128; v = Math.floor(v / 128)) n++;
  return n;
}

/** Bytes of a chunk whose streams (of these lengths) are stored raw (packChunk's layout). */
function rawChunkLength(streamLengths: readonly number[]): number {
  let n = 1 + varLen(streamLengths.length);
  for (const len of streamLengths) n += varLen(len * 2) + len;
  return n;
}

function byteWidth(max: number): number {
  return max < 0x100 ? 1 : max < 0x10000 ? 2 : max < 0x1000000 ? 3 : 4;
}

/** The chunk with its streams stored raw (the block is compressed as a whole). */
function packRaw(encoding: EncodingId, streams: Uint8Array[]): Uint8Array {
  return packChunk(
    { encoding, streams },
    ZSTD_LEVEL,
    streams.map(() => false),
  ).bytes;
}

/*
 * The chunk writers below pick the same encoding as trying every candidate of the column kind
 * and keeping the smallest raw chunk (first wins ties), but size the candidates in one pass
 * and encode only the winner: encoding every candidate was most of a build's time.
 */

/** Small integers: runs or planes. */
function smallIntsChunk(values: Uint8Array | Uint32Array): Uint8Array {
  const n = values.length;
  runSizes(values, sizes);
  const valsLength = sizes[0];
  const runsLength = sizes[1];
  const runs = rawChunkLength([valsLength, runsLength]);
  const planes = rawChunkLength([1 + byteWidth(sizes[2]) * n]);
  if (planes < runs) return packRaw(Encoding.PLANES, encodePlanes(values));
  // The runs streams (value, run length varints), written straight into their exact sizes.
  const vals = new Uint8Array(valsLength);
  const lengths = new Uint8Array(runsLength);
  writeRuns(values, vals, lengths);
  return packRaw(Encoding.RUNS, [vals, lengths]);
}

const sizes = new Float64Array(3);

/**
 * Into `out`: the bytes of the runs' value varints, of their length varints, and the largest
 * value. The loops of smallIntsChunk live in functions of their own (see dictCodes).
 */
function runSizes(values: Uint8Array | Uint32Array, out: Float64Array): void {
  const n = values.length;
  let valsLength = 0;
  let runsLength = 0;
  let max = 0;
  for (let i = 0; i < n;) {
    const v = values[i];
    const j = runEnd(values, i);
    valsLength += varLen(v);
    runsLength += varLen(j - i);
    if (v > max) max = v;
    i = j;
  }
  out[0] = valsLength;
  out[1] = runsLength;
  out[2] = max;
}

/** The runs' value and length varints into `vals` and `lengths` (sized by runSizes). */
function writeRuns(values: Uint8Array | Uint32Array, vals: Uint8Array, lengths: Uint8Array): void {
  const n = values.length;
  let vp = 0;
  let lp = 0;
  for (let i = 0; i < n;) {
    const v = values[i];
    const j = runEnd(values, i);
    vp = putVarUint32(vals, vp, v);
    lp = putVarUint32(lengths, lp, j - i);
    i = j;
  }
}

/** LEB128 of a value below 2^32 at `pos`; returns the position after it. */
function putVarUint32(out: Uint8Array, pos: number, value: number): number {
  let v = value >>> 0;
  while (v > 0x7f) {
    out[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[pos++] = v;
  return pos;
}

/**
 * Bit-class streams (int-codec.ts: a class byte per value, the mantissa bits below its leading
 * one packed least significant bit first) of safe integers, or of the differences of successive
 * values with `delta`; `mantissaBits` is their exact total. Same bytes as BitClassWriter.
 */
function bitClassStreams(values: Float64Array, delta: boolean, mantissaBits: number): Uint8Array[] {
  const n = values.length;
  const classes = new Uint8Array(n);
  const mantissas = new Uint8Array(Math.ceil(mantissaBits / 8));
  let pos = 0;
  let acc = 0;
  let accBits = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i];
    const v = delta ? x - prev : x;
    prev = x;
    const negative = v < 0;
    let abs = negative ? -v : v;
    const bits = bitLength(abs);
    classes[i] = negative ? bits + 64 : bits;
    if (bits <= 1) continue;
    let rest = bits - 1;
    abs -= POW2[rest];
    // In pieces of at most 24 bits, so the accumulator stays a positive int32.
    while (rest > 0) {
      const take = rest > 24 ? 24 : rest;
      const piece = take === rest ? abs : abs % 0x1000000;
      acc |= piece << accBits;
      accBits += take;
      while (accBits >= 8) {
        mantissas[pos++] = acc & 0xff;
        acc >>>= 8;
        accBits -= 8;
      }
      abs = (abs - piece) / 0x1000000;
      rest -= take;
    }
  }
  if (accBits > 0) mantissas[pos] = acc & 0xff;
  return [classes, mantissas];
}

const POW2 = Float64Array.from({ length: 54 }, (_, k) => 2 ** k);

/** Total mantissa bits of bit-class values (of the differences with `delta`). */
function mantissaBitsOf(values: Float64Array, delta: boolean): number {
  let total = 0;
  let prev = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    const v = delta ? x - prev : x;
    prev = x;
    const bits = bitLength(v < 0 ? -v : v);
    if (bits > 1) total += bits - 1;
  }
  return total;
}

/** A quantity chunk: the bit-class streams when every value is a safe integer (no big rows). */
function quantityChunk(col: QuantityColumn, from: number, to: number): Uint8Array {
  const values = col.values.subarray(from, to);
  if (col.big !== null || !allSafeIntegers(values))
    return packRaw(Encoding.QUANTITY_BIT_CLASS, encodeQuantities(quantitySlice(col, from, to), 0, to - from));
  const streams = bitClassStreams(values, false, mantissaBitsOf(values, false));
  return packRaw(Encoding.QUANTITY_BIT_CLASS, [streams[0], streams[1], new Uint8Array(0)]);
}

function allSafeIntegers(values: Float64Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isSafeInteger(values[i])) return false;
  return true;
}

/** Open-addressing set of the distinct values of a block (-1: empty; values are >= 0). */
const SEEN_SLOTS = 1 << 12;
const seen = new Float64Array(SEEN_SLOTS);
let seenValues = new Float64Array(1024);

/**
 * The distinct values of `values` ascending (in seenValues), or -1 when more than `max` are
 * distinct (found without sorting the whole block: most time columns bail out early).
 */
function distinctSorted(values: Float64Array, max: number): number {
  let slots = SEEN_SLOTS;
  while (slots < max * 4) slots *= 2;
  const table = slots === SEEN_SLOTS ? seen : new Float64Array(slots);
  table.fill(-1);
  if (seenValues.length < max + 1) seenValues = new Float64Array(max + 1);
  const out = seenValues;
  const mask = slots - 1;
  let distinct = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    for (let k = slotOf(v, mask); ; k = (k + 1) & mask) {
      const t = table[k];
      if (t === v) break;
      if (t === -1) {
        if (distinct === max) return -1;
        table[k] = v;
        out[distinct++] = v;
        break;
      }
    }
  }
  out.subarray(0, distinct).sort();
  return distinct;
}

/** Integers in [0, 2^53): delta bit-class, or a value dictionary when it is smaller. */
function timestampsChunk(values: Float64Array): Uint8Array {
  const n = values.length;
  const mantissaBits = mantissaBitsOf(values, true);
  const delta = rawChunkLength([n, Math.ceil(mantissaBits / 8)]);
  // The value dictionary is a candidate only with at most a quarter of the values distinct.
  const distinct = distinctSorted(values, Math.max(16, n >> 2));
  if (distinct < 0) return packRaw(Encoding.DELTA_BIT_CLASS, bitClassStreams(values, true, mantissaBits));
  const keys = seenValues.slice(0, distinct);
  let dictLength = varLen(distinct);
  let last = 0;
  for (let k = 0; k < distinct; k++) {
    dictLength += varLen(keys[k] - last);
    last = keys[k];
  }
  const dict = rawChunkLength([dictLength, 1 + byteWidth(distinct - 1) * n]);
  if (delta <= dict) return packRaw(Encoding.DELTA_BIT_CLASS, bitClassStreams(values, true, mantissaBits));
  return valueDictChunk(values, keys, dictLength);
}

/**
 * The value dictionary chunk: distinct values ascending (delta varints), then each row's index
 * among them as planes. A function of its own, its loop in another (dictCodes): compiled
 * inside timestampsChunk, this rarely taken branch deoptimized it a hundred times over a cold
 * worker's first segment.
 */
function valueDictChunk(values: Float64Array, keys: Float64Array, dictLength: number): Uint8Array {
  const distinct = keys.length;
  const head = new ByteWriter(dictLength);
  head.writeVarUint(distinct);
  let last = 0;
  for (let k = 0; k < distinct; k++) {
    head.writeVarUint(keys[k] - last);
    last = keys[k];
  }
  const planes = encodePlanes(dictCodes(values, keys));
  return packRaw(Encoding.VALUE_DICT, [head.finish(), planes[0]]);
}

/**
 * Each value's index among `keys` (ascending, holding every value). Hot loops live in small
 * functions of their own here: code after a loop that V8 compiled on the stack (OSR) before
 * that code ever ran deoptimizes there, again on every call, until the function is compiled
 * whole.
 */
function dictCodes(values: Float64Array, keys: Float64Array): Uint32Array {
  // Found through an open-addressing table of the keys: one probe or two per value, where a
  // binary search over an hour block's several hundred buckets took ten.
  let slots = 16;
  while (slots < keys.length * 4) slots *= 2;
  if (codeSlots.length < slots) {
    codeSlots = new Float64Array(slots);
    codeOfSlot = new Uint32Array(slots);
  }
  const table = codeSlots.subarray(0, slots).fill(-1);
  const mask = slots - 1;
  for (let c = 0; c < keys.length; c++) {
    let k = slotOf(keys[c], mask);
    while (table[k] !== -1) k = (k + 1) & mask;
    table[k] = keys[c];
    codeOfSlot[k] = c;
  }
  return lookUpCodes(values, table, mask);
}

let codeSlots = new Float64Array(0);
let codeOfSlot = new Uint32Array(0);

/** Each value's code through the table dictCodes filled (every value is in it). */
function lookUpCodes(values: Float64Array, table: Float64Array, mask: number): Uint32Array {
  const n = values.length;
  const codes = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let k = slotOf(v, mask);
    while (table[k] !== v) {
      assert(table[k] !== -1, 'a value missing from its value dictionary');
      k = (k + 1) & mask;
    }
    codes[i] = codeOfSlot[k];
  }
  return codes;
}

/**
 * Dictionary codes are stored + 1 (0 = null), as in raw segments; through `map` when the
 * file's dictionary is not the rows' own.
 */
function shiftedCodes(codes: Uint32Array, from: number, to: number, map: Uint32Array | null): Uint32Array {
  const out = new Uint32Array(to - from);
  if (map === null) for (let i = from; i < to; i++) out[i - from] = (codes[i] + 1) >>> 0;
  else mapCodes(codes, from, to, map, out);
  return out;
}

function mapCodes(codes: Uint32Array, from: number, to: number, map: Uint32Array, out: Uint32Array): void {
  for (let i = from; i < to; i++) {
    const code = codes[i];
    out[i - from] = code === NULL_CODE ? 0 : map[code] + 1;
  }
}

function quantitySlice(col: QuantityColumn, from: number, to: number): QuantityColumn {
  if (col.big === null) return { values: col.values.subarray(from, to), big: null };
  const big = new Map<number, bigint>();
  for (const [row, v] of col.big) if (row >= from && row < to) big.set(row - from, v);
  return { values: col.values.subarray(from, to), big };
}

const bounds = new Float64Array(4);

/**
 * Rows [from, to)'s first and last bucket and first and last event time, into `out`. A loop
 * of its own (see dictCodes): inside the block loop it deoptimized encodeRollupFile per block.
 */
function blockBounds(rows: RollupRows, from: number, to: number, out: Float64Array): void {
  let minBucket = Number.POSITIVE_INFINITY;
  let maxBucket = Number.NEGATIVE_INFINITY;
  let minTs = Number.POSITIVE_INFINITY;
  let maxTs = Number.NEGATIVE_INFINITY;
  for (let i = from; i < to; i++) {
    minBucket = Math.min(minBucket, rows.timestamp_ms[i]);
    maxBucket = Math.max(maxBucket, rows.timestamp_ms[i]);
    minTs = Math.min(minTs, rows.first_ts[i]);
    maxTs = Math.max(maxTs, rows.last_ts[i]);
  }
  out[0] = minBucket;
  out[1] = maxBucket;
  out[2] = minTs;
  out[3] = maxTs;
}

/**
 * The rows with every dictionary in text order (codes remapped), as files store them: a query
 * over one file then orders its result groups by code, without comparing values
 * (aggregate.ts). Account dictionaries already are.
 */
function withSortedDicts(rows: RollupRows): RollupRows {
  let out = rows;
  for (const name of ROLLUP_DICT_COLUMNS) {
    const { dict, codes } = rows[name];
    const order = textOrder(dict);
    if (order === null) continue;
    const newCode = ranksOf(order);
    const remapped = new Uint32Array(rows.rowCount);
    for (let i = 0; i < rows.rowCount; i++) {
      const code = codes[i];
      remapped[i] = code === NULL_CODE ? NULL_CODE : newCode[code];
    }
    if (out === rows) out = { ...rows };
    out[name] = { dict: Array.from(order, (c) => dict[c]), codes: remapped };
  }
  return out;
}

/**
 * Where blocks end: whole accounts packed up to `blockRows` rows, and an account longer than
 * that in equal blocks of its own. A first read of one account's rows then decodes them and
 * at most `blockRows` rows of its neighbours (rows are sorted by account).
 */
export function blockEnds(accounts: Uint32Array, rowCount: number, blockRows: number): number[] {
  const ends: number[] = [];
  let start = 0;
  let i = 0;
  while (i < rowCount) {
    let j = i + 1;
    while (j < rowCount && accounts[j] === accounts[i]) j++;
    const length = j - i;
    if (length > blockRows) {
      if (i > start) ends.push(i);
      const parts = Math.ceil(length / blockRows);
      for (let p = 1; p <= parts; p++) ends.push(i + Math.round((length * p) / parts));
      start = j;
    } else if (j - start > blockRows) {
      ends.push(i);
      start = i;
    }
    i = j;
  }
  if (start < rowCount) ends.push(rowCount);
  return ends;
}

export function encodeRollupFile(
  unsorted: RollupRows,
  level: RollupLevel,
  blockRows = rollupBlockRows(level),
): EncodedRollup {
  const rows = withSortedDicts(unsorted);
  const dicts = Object.fromEntries(ROLLUP_DICT_COLUMNS.map((name) => [name, rows[name].dict])) as Record<
    RollupDictColumn,
    string[]
  >;
  return assembleRollupFile(level, dicts, [encodeRollupBlocks(rows, level, null, blockRows)]);
}

/** Rows encoded as blocks, to be placed in a file (assembleRollupFile). */
export interface RollupBlocks {
  /** The blocks back to back. */
  bytes: Uint8Array;
  /** Their metadata, offsets from the start of `bytes`. */
  blocks: RollupBlockMeta[];
  rows: number;
  /** Event times over the rows (first/last); ±Infinity with no row. */
  minTs: number;
  maxTs: number;
}

/**
 * `rows` as blocks (cut by blockEnds). `codeMaps`: each dictionary column's codes written
 * through its map into the file's dictionaries (sorted, as encodeRollupFile writes them), so
 * parts of one file, over accounts that do not overlap, can be encoded apart, one per thread;
 * without, the rows' dictionaries must be the file's.
 */
export function encodeRollupBlocks(
  rows: RollupRows,
  level: RollupLevel,
  codeMaps: Record<RollupDictColumn, Uint32Array> | null = null,
  blockRows = rollupBlockRows(level),
): RollupBlocks {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const blocks: RollupBlockMeta[] = [];
  let minTs = Number.POSITIVE_INFINITY;
  let maxTs = Number.NEGATIVE_INFINITY;
  let from = 0;
  for (const to of blockEnds(rows.account_id.codes, rows.rowCount, blockRows)) {
    const q = (col: QuantityColumn) => quantityChunk(col, from, to);
    const chunks = [
      ...ROLLUP_DICT_COLUMNS.map((name) =>
        smallIntsChunk(shiftedCodes(rows[name].codes, from, to, codeMaps === null ? null : codeMaps[name])),
      ),
      smallIntsChunk(rows.kind.subarray(from, to)),
      timestampsChunk(rows.timestamp_ms.subarray(from, to)),
      q(rows.quantity),
      timestampsChunk(rows.count.subarray(from, to)),
      q(rows.min),
      q(rows.max),
      timestampsChunk(rows.first_ts.subarray(from, to)),
      timestampsChunk(rows.last_ts.subarray(from, to)),
    ];
    const rawLength = chunks.reduce((n, c) => n + c.length, 0);
    const plain = new Uint8Array(rawLength);
    let at = 0;
    for (const c of chunks) {
      plain.set(c, at);
      at += c.length;
    }
    // Blocks are stored as encoded, not zstd-compressed: a block is read on the query path,
    // where decompressing it (~2 µs per KiB, setup included) costs more than the page-cache
    // read it saves, and the column encodings leave little to squeeze (zstd saved 23-30% on
    // the bench's blocks). Readers still accept a block stored as one zstd frame.
    const zstd = false;
    const block = plain;
    const length = block.length;
    const accounts = rows.account_id;
    blockBounds(rows, from, to, bounds);
    const minBucket = bounds[0];
    const maxBucket = bounds[1];
    minTs = Math.min(minTs, bounds[2]);
    maxTs = Math.max(maxTs, bounds[3]);
    blocks.push({
      offset,
      length,
      crc32c: crc32c(block),
      zstd,
      raw_length: rawLength,
      rows: to - from,
      chunks: chunks.map((c) => c.length),
      min_account: accounts.dict[accounts.codes[from]],
      max_account: accounts.dict[accounts.codes[to - 1]],
      min_bucket: minBucket,
      max_bucket: maxBucket,
    });
    parts.push(block);
    offset += length;
    from = to;
  }
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, blocks, rows: rows.rowCount, minTs, maxTs };
}

/**
 * The rollup file of `level` made of `parts` (blocks of rows in file order, their codes those
 * of `dicts`). The file's checksum is combined from the blocks' (crc32cCombine), not read again.
 */
export function assembleRollupFile(
  level: RollupLevel,
  dicts: Record<RollupDictColumn, string[]>,
  parts: readonly RollupBlocks[],
): EncodedRollup {
  const blocks: RollupBlockMeta[] = [];
  let offset = ROLLUP_MAGIC.length;
  let crc = crc32c(ROLLUP_MAGIC);
  let rows = 0;
  let minTs = Number.POSITIVE_INFINITY;
  let maxTs = Number.NEGATIVE_INFINITY;
  for (const part of parts) {
    for (const b of part.blocks) {
      blocks.push({ ...b, offset: offset + b.offset });
      crc = crc32cCombine(crc, b.crc32c, b.length);
    }
    offset += part.bytes.length;
    rows += part.rows;
    minTs = Math.min(minTs, part.minTs);
    maxTs = Math.max(maxTs, part.maxTs);
  }
  const footer: RollupFooter = {
    format: ROLLUP_FORMAT_VERSION,
    level,
    rows,
    min_ts: rows === 0 ? 0 : minTs,
    max_ts: rows === 0 ? 0 : maxTs,
    dicts,
    blocks,
  };
  const footerBytes = zstdCompress(encoder.encode(JSON.stringify(footer)), ZSTD_LEVEL);
  const trailer = new Uint8Array(ROLLUP_TRAILER_BYTES);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, footerBytes.length, true);
  view.setUint32(4, crc32c(footerBytes), true);
  trailer[8] = ROLLUP_FORMAT_VERSION;
  trailer.set(ROLLUP_MAGIC, 9);
  const bytes = new Uint8Array(offset + footerBytes.length + trailer.length);
  bytes.set(ROLLUP_MAGIC);
  let at = ROLLUP_MAGIC.length;
  for (const part of parts) {
    bytes.set(part.bytes, at);
    at += part.bytes.length;
  }
  bytes.set(footerBytes, at);
  bytes.set(trailer, at + footerBytes.length);
  crc = crc32c(trailer, crc32c(footerBytes, crc));
  return { bytes, crc32c: crc, rows, min_ts: footer.min_ts, max_ts: footer.max_ts };
}

/** Where the footer lies, from the trailer (the file's last ROLLUP_TRAILER_BYTES). */
export function rollupFooterRange(
  trailer: Uint8Array,
  fileBytes: number,
): { offset: number; length: number; crc: number } {
  if (trailer.length !== ROLLUP_TRAILER_BYTES) throw new DecodeError('rollup trailer is truncated');
  for (let i = 0; i < 4; i++)
    if (trailer[9 + i] !== ROLLUP_MAGIC[i]) throw new DecodeError('rollup file does not end with URSG');
  if (trailer[8] !== ROLLUP_FORMAT_VERSION)
    throw new DecodeError(`rollup format ${trailer[8]} is not supported`);
  const view = new DataView(trailer.buffer, trailer.byteOffset, trailer.length);
  const length = view.getUint32(0, true);
  const offset = fileBytes - ROLLUP_TRAILER_BYTES - length;
  if (offset < ROLLUP_MAGIC.length) throw new DecodeError('rollup footer length is out of range');
  return { offset, length, crc: view.getUint32(4, true) };
}

export function decodeRollupFooter(bytes: Uint8Array, crc: number, fileBytes: number): RollupFooter {
  if (crc32c(bytes) !== crc) throw new DecodeError('rollup footer checksum mismatch');
  const f = JSON.parse(decoder.decode(zstdDecompress(bytes))) as RollupFooter;
  let expect = ROLLUP_MAGIC.length;
  let rows = 0;
  for (const b of f.blocks) {
    if (b.offset !== expect || b.chunks.length !== CHUNKS_PER_BLOCK)
      throw new DecodeError('rollup footer: block layout is inconsistent');
    expect += b.length;
    rows += b.rows;
  }
  if (rows !== f.rows) throw new DecodeError('rollup footer: block rows do not add up');
  if (expect + bytes.length + ROLLUP_TRAILER_BYTES !== fileBytes)
    throw new DecodeError('rollup footer: blocks do not fill the file');
  return f;
}

/** Blocks at least this large (stored) go through node:zlib's zstd: faster than the
 * TypeScript decoder once the frame's setup cost is small beside its size (measured). */
const NATIVE_ZSTD_MIN_BYTES = 8192;

/**
 * Decodes one block (its bytes verified against the footer first). With `lazy`, each column
 * is decoded on first access and kept: a query reads the few columns it needs (a block's
 * first read is the cold cost of an account-month query). A lazily decoded column that fails
 * to decode throws what `onError` makes of the error.
 */
export function decodeRollupBlock(
  footer: RollupFooter,
  index: number,
  stored: Uint8Array,
  lazy?: { onError: (err: unknown) => never },
): RollupRows {
  let bytes = stored;
  const meta = footer.blocks[index];
  if (bytes.length !== meta.length || crc32c(bytes) !== meta.crc32c)
    throw new DecodeError(`rollup block ${index}: checksum mismatch`);
  if (meta.zstd) bytes = meta.length >= NATIVE_ZSTD_MIN_BYTES ? zlibDecompress(bytes) : zstdDecompress(bytes);
  // Kept for later columns: a view of a buffer holding only this block, else a copy (not a
  // view pinning a larger read).
  else if (lazy !== undefined && bytes.byteLength !== bytes.buffer.byteLength) bytes = stored.slice();
  if (bytes.length !== meta.raw_length)
    throw new DecodeError(`rollup block ${index}: ${bytes.length} bytes, the footer says ${meta.raw_length}`);
  const block = new RollupBlock(footer, meta, bytes, lazy?.onError ?? null);
  if (lazy !== undefined) return block;
  const rows: Record<string, unknown> = { rowCount: meta.rows };
  BLOCK_COLUMNS.forEach((name, k) => {
    rows[name] = block.column(k);
  });
  return rows as unknown as RollupRows;
}

/** The columns of a block, in the order of their chunks. */
export const BLOCK_COLUMNS = [
  ...ROLLUP_DICT_COLUMNS,
  'kind',
  'timestamp_ms',
  'quantity',
  'count',
  'min',
  'max',
  'first_ts',
  'last_ts',
] as const;
const DICT_CHUNKS = ROLLUP_DICT_COLUMNS.length;
type BlockColumn = RollupRows[(typeof BLOCK_COLUMNS)[number]];

/**
 * One block's rows, each column decoded from its chunk on first access and kept. Read-only:
 * the cache shares it between queries. A class (getters on the prototype), so that making one
 * costs one object.
 */
class RollupBlock implements RollupRows {
  readonly rowCount: number;
  private readonly footer: RollupFooter;
  private readonly bytes: Uint8Array;
  private readonly chunkLengths: readonly number[];
  private readonly onError: ((err: unknown) => never) | null;
  private readonly decoded: (BlockColumn | undefined)[] = new Array<BlockColumn | undefined>(
    CHUNKS_PER_BLOCK,
  );

  constructor(
    footer: RollupFooter,
    meta: RollupBlockMeta,
    bytes: Uint8Array,
    onError: ((err: unknown) => never) | null,
  ) {
    this.rowCount = meta.rows;
    this.footer = footer;
    this.bytes = bytes;
    this.chunkLengths = meta.chunks;
    this.onError = onError;
  }

  get account_id(): DictColumn {
    return this.column(0) as DictColumn;
  }
  get subscription_id(): DictColumn {
    return this.column(1) as DictColumn;
  }
  get product_id(): DictColumn {
    return this.column(2) as DictColumn;
  }
  get meter_id(): DictColumn {
    return this.column(3) as DictColumn;
  }
  get model_id(): DictColumn {
    return this.column(4) as DictColumn;
  }
  get unit(): DictColumn {
    return this.column(5) as DictColumn;
  }
  get source(): DictColumn {
    return this.column(6) as DictColumn;
  }
  get kind(): Uint8Array {
    return this.column(7) as Uint8Array;
  }
  get timestamp_ms(): Float64Array {
    return this.column(8) as Float64Array;
  }
  get quantity(): QuantityColumn {
    return this.column(9) as QuantityColumn;
  }
  get count(): Float64Array {
    return this.column(10) as Float64Array;
  }
  get min(): QuantityColumn {
    return this.column(11) as QuantityColumn;
  }
  get max(): QuantityColumn {
    return this.column(12) as QuantityColumn;
  }
  get first_ts(): Float64Array {
    return this.column(13) as Float64Array;
  }
  get last_ts(): Float64Array {
    return this.column(14) as Float64Array;
  }

  /** Column k (BLOCK_COLUMNS order), decoded on first access. */
  column(k: number): BlockColumn {
    const kept = this.decoded[k];
    if (kept !== undefined) return kept;
    let value: BlockColumn;
    try {
      value = this.decode(k);
    } catch (err) {
      if (this.onError === null) throw err;
      return this.onError(err);
    }
    this.decoded[k] = value;
    return value;
  }

  private decode(k: number): BlockColumn {
    let at = 0;
    for (let i = 0; i < k; i++) at += this.chunkLengths[i];
    const chunk = this.bytes.subarray(at, at + this.chunkLengths[k]);
    const n = this.rowCount;
    if (k < DICT_CHUNKS) {
      const dict = this.footer.dicts[ROLLUP_DICT_COLUMNS[k]];
      const codes = new Uint32Array(n);
      decodeSmallIntsInto(chunk, 'dict', codes, dict.length + 1, true);
      return { dict, codes };
    }
    const name = BLOCK_COLUMNS[k];
    if (name === 'kind') {
      const out = new Uint8Array(n);
      decodeSmallIntsInto(chunk, 'kind', out, KIND_LIMIT);
      return out;
    }
    if (name === 'quantity' || name === 'min' || name === 'max') {
      const values = new Float64Array(n);
      const big = new Map<number, bigint>();
      decodeQuantityChunkInto(chunk, values, 0, n, big);
      return { values, big: big.size > 0 ? big : null };
    }
    const out = new Float64Array(n);
    decodeTimestampsInto(chunk, out);
    return out;
  }
}

/** Every row of a whole rollup file, verified (check --deep, tools, tests). */
export function readRollupFile(bytes: Uint8Array): { footer: RollupFooter; rows: RollupRows[] } {
  const range = rollupFooterRange(bytes.subarray(bytes.length - ROLLUP_TRAILER_BYTES), bytes.length);
  const footer = decodeRollupFooter(
    bytes.subarray(range.offset, range.offset + range.length),
    range.crc,
    bytes.length,
  );
  const rows = footer.blocks.map((b, i) =>
    decodeRollupBlock(footer, i, bytes.subarray(b.offset, b.offset + b.length)),
  );
  return { footer, rows };
}
