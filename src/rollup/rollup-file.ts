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
import { crc32c } from '../storage/encoding/crc32c.ts';
import { DecodeError } from '../storage/encoding/varint.ts';
import { zlibDecompress, zstdCompress, zstdDecompress } from '../storage/encoding/zstd.ts';
import type { RollupLevel } from '../storage/manifest.ts';
import {
  decodeQuantityChunkInto,
  decodeSmallIntsInto,
  decodeTimestampsInto,
  type Candidate,
  packChunk,
  quantityCandidates,
  smallIntCandidates,
  timestampCandidates,
} from '../storage/segment/column-chunk.ts';
import { KIND_LIMIT } from '../storage/segment/segment-format.ts';
import type { DictColumn, QuantityColumn } from '../model/columns.ts';
import { ROLLUP_DICT_COLUMNS, type RollupDictColumn, type RollupRows } from './rollup-rows.ts';

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

/** The smallest candidate, its streams stored raw (the block is compressed as a whole). */
function smallestRaw(candidates: readonly Candidate[]): Uint8Array {
  let best: Uint8Array | null = null;
  for (const c of candidates) {
    const bytes = packChunk(
      c,
      ZSTD_LEVEL,
      c.streams.map(() => false),
    ).bytes;
    if (best === null || bytes.length < best.length) best = bytes;
  }
  if (best === null) throw new Error('rollup chunk: no candidate encoding');
  return best;
}

/** Dictionary codes are stored + 1 (0 = null), as in raw segments. */
function shiftedCodes(codes: Uint32Array, from: number, to: number): Uint32Array {
  const out = new Uint32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = (codes[i] + 1) >>> 0;
  return out;
}

function quantitySlice(col: QuantityColumn, from: number, to: number): QuantityColumn {
  if (col.big === null) return { values: col.values.subarray(from, to), big: null };
  const big = new Map<number, bigint>();
  for (const [row, v] of col.big) if (row >= from && row < to) big.set(row - from, v);
  return { values: col.values.subarray(from, to), big };
}

export function encodeRollupFile(
  rows: RollupRows,
  level: RollupLevel,
  blockRows = rollupBlockRows(level),
): EncodedRollup {
  const parts: Uint8Array[] = [ROLLUP_MAGIC];
  let offset = ROLLUP_MAGIC.length;
  const blocks: RollupBlockMeta[] = [];
  let minTs = Number.POSITIVE_INFINITY;
  let maxTs = Number.NEGATIVE_INFINITY;
  for (let from = 0; from < rows.rowCount; from += blockRows) {
    const to = Math.min(rows.rowCount, from + blockRows);
    const q = (col: QuantityColumn) => {
      const s = quantitySlice(col, from, to);
      return quantityCandidates(s, 0, to - from);
    };
    const chunks = [
      ...ROLLUP_DICT_COLUMNS.map((name) => smallIntCandidates(shiftedCodes(rows[name].codes, from, to))),
      smallIntCandidates(rows.kind.subarray(from, to)),
      timestampCandidates(rows.timestamp_ms.subarray(from, to)),
      q(rows.quantity),
      timestampCandidates(rows.count.subarray(from, to)),
      q(rows.min),
      q(rows.max),
      timestampCandidates(rows.first_ts.subarray(from, to)),
      timestampCandidates(rows.last_ts.subarray(from, to)),
    ].map(smallestRaw);
    const rawLength = chunks.reduce((n, c) => n + c.length, 0);
    const plain = new Uint8Array(rawLength);
    let at = 0;
    for (const c of chunks) {
      plain.set(c, at);
      at += c.length;
    }
    // One zstd frame per block: a call per chunk stream costs ~50 µs of context setup each,
    // which dominated the build (rollup blocks are always read whole).
    const packed = zstdCompress(plain, ZSTD_LEVEL);
    const zstd = packed.length < plain.length;
    const block = zstd ? packed : plain;
    const length = block.length;
    const accounts = rows.account_id;
    let minBucket = Number.POSITIVE_INFINITY;
    let maxBucket = Number.NEGATIVE_INFINITY;
    for (let i = from; i < to; i++) {
      minBucket = Math.min(minBucket, rows.timestamp_ms[i]);
      maxBucket = Math.max(maxBucket, rows.timestamp_ms[i]);
      minTs = Math.min(minTs, rows.first_ts[i]);
      maxTs = Math.max(maxTs, rows.last_ts[i]);
    }
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
  }
  const footer: RollupFooter = {
    format: ROLLUP_FORMAT_VERSION,
    level,
    rows: rows.rowCount,
    min_ts: rows.rowCount === 0 ? 0 : minTs,
    max_ts: rows.rowCount === 0 ? 0 : maxTs,
    dicts: Object.fromEntries(ROLLUP_DICT_COLUMNS.map((name) => [name, rows[name].dict])) as Record<
      RollupDictColumn,
      string[]
    >,
    blocks,
  };
  const footerBytes = zstdCompress(encoder.encode(JSON.stringify(footer)), ZSTD_LEVEL);
  const trailer = new Uint8Array(ROLLUP_TRAILER_BYTES);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, footerBytes.length, true);
  view.setUint32(4, crc32c(footerBytes), true);
  trailer[8] = ROLLUP_FORMAT_VERSION;
  trailer.set(ROLLUP_MAGIC, 9);
  parts.push(footerBytes, trailer);
  const total = offset + footerBytes.length + trailer.length;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, crc32c: crc32c(bytes), rows: rows.rowCount, min_ts: footer.min_ts, max_ts: footer.max_ts };
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
  if (bytes.length !== meta.raw_length)
    throw new DecodeError(`rollup block ${index}: ${bytes.length} bytes, the footer says ${meta.raw_length}`);
  const n = meta.rows;
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const len of meta.chunks) {
    chunks.push(bytes.subarray(at, at + len));
    at += len;
  }
  const dict = (k: number, name: RollupDictColumn) => (): DictColumn => {
    const d = footer.dicts[name];
    const codes = new Uint32Array(n);
    decodeSmallIntsInto(chunks[k], 'dict', codes, d.length + 1, true);
    return { dict: d, codes };
  };
  const quantity = (k: number) => (): QuantityColumn => {
    const values = new Float64Array(n);
    const big = new Map<number, bigint>();
    decodeQuantityChunkInto(chunks[k], values, 0, n, big);
    return { values, big: big.size > 0 ? big : null };
  };
  const times = (k: number) => (): Float64Array => {
    const out = new Float64Array(n);
    decodeTimestampsInto(chunks[k], out);
    return out;
  };
  const kind = (): Uint8Array => {
    const out = new Uint8Array(n);
    decodeSmallIntsInto(chunks[7], 'kind', out, KIND_LIMIT);
    return out;
  };
  const d = ROLLUP_DICT_COLUMNS.length;
  const makers: ColumnMakers = {
    ...(Object.fromEntries(ROLLUP_DICT_COLUMNS.map((name, k) => [name, dict(k, name)])) as Pick<
      ColumnMakers,
      RollupDictColumn
    >),
    kind,
    timestamp_ms: times(d + 1),
    quantity: quantity(d + 2),
    count: times(d + 3),
    min: quantity(d + 4),
    max: quantity(d + 5),
    first_ts: times(d + 6),
    last_ts: times(d + 7),
  };
  return lazy === undefined ? eagerRows(n, makers) : lazyRows(n, makers, lazy.onError);
}

export type ColumnMakers = { [K in Exclude<keyof RollupRows, 'rowCount'>]: () => RollupRows[K] };

function eagerRows(rowCount: number, makers: ColumnMakers): RollupRows {
  const rows: Record<string, unknown> = { rowCount };
  for (const [name, make] of Object.entries(makers)) rows[name] = make();
  return rows as unknown as RollupRows;
}

/**
 * Rows whose columns are made on first access and kept (a rollup block's columns, or views of
 * one account's rows). Read-only: the cache shares them between queries.
 */
export function lazyRows(
  rowCount: number,
  makers: ColumnMakers,
  onError: (err: unknown) => never,
): RollupRows {
  const rows = { rowCount } as RollupRows;
  for (const [name, make] of Object.entries(makers) as [string, () => unknown][]) {
    let value: unknown;
    Object.defineProperty(rows, name, {
      enumerable: true,
      get() {
        if (value === undefined) {
          try {
            value = make();
          } catch (err) {
            onError(err);
          }
        }
        return value;
      },
    });
  }
  return rows;
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
