/**
 * The segment footer and trailer: binary, zstd-compressed when that is smaller. The footer
 * holds the segment identity, the per-segment dictionaries (front-coded, sorted), block
 * metadata, the chunk directory (length + CRC32C per chunk; offsets are implied because chunks
 * are contiguous) and the Bloom filter's length and CRC32C. The trailer (fixed size, last
 * bytes of the file) locates and checksums the footer.
 *
 * Footer fields, in order (all varints unless noted):
 *   segmentId, day (string), bucket, createdAtMs, rowCount, minTimestampMs,
 *   maxTimestampMs - minTimestampMs,
 *   per dict column (DICT_COLUMN_NAMES order): u8 flags, then front-coded sorted values (or,
 *     with DICT_FLAG_DIMENSION_PAIRS, the dimension-dict form),
 *   blockCount, per block: rowCount, minTs - segment minTs, maxTs - minTs,
 *     min account code, max - min account code,
 *   per column (COLUMN_NAMES order), per block: chunk length, u32 crc32c,
 *   bloom length, u32 crc32c,
 *   format 2 only: id index chunk count, per chunk: u32 first hash, length, u32 crc32c.
 *
 * Invariants:
 * - decodeFooter(encodeFooter(f)) deep-equals f;
 * - metaOf() derives SegmentMeta the same way for writer and reader.
 */

import { DICT_COLUMN_NAMES } from '../../model/columns.ts';
import { parseCanonicalMaps, readDimensionDict, writeDimensionDict } from '../encoding/dimension-dict.ts';
import { readFrontCoded, writeFrontCoded } from '../encoding/string-codec.ts';
import { ByteReader, ByteWriter, DecodeError } from '../encoding/varint.ts';
import { zstdCompress, zstdDecompress } from '../encoding/zstd.ts';
import {
  type BlockMeta,
  COLUMN_COUNT,
  DICT_COLUMN_COUNT,
  DICT_FLAG_DIMENSION_PAIRS,
  DICT_FLAG_HAS_NULL,
  FOOTER_RAW,
  FOOTER_ZSTD,
  FORMAT_VERSION,
  FORMAT_VERSION_1,
  FORMAT_VERSION_3,
  isDay,
  SEGMENT_MAGIC,
  SEGMENT_ROWS_MAX,
  type SegmentInfo,
  type SegmentMeta,
  TRAILER_BYTES,
} from './segment-format.ts';

export interface FooterDict {
  /** Sorted distinct non-null values; a stored code c means values[c] (or values[c - 1] with nulls). */
  values: string[];
  hasNull: boolean;
}

export interface FooterBlock {
  rowCount: number;
  minTimestampMs: number;
  maxTimestampMs: number;
  /** Indexes into the account_id dictionary. */
  minAccountCode: number;
  maxAccountCode: number;
}

export interface FooterChunk {
  length: number;
  crc: number;
}

export interface FooterData {
  info: SegmentInfo;
  rowCount: number;
  minTimestampMs: number;
  maxTimestampMs: number;
  /** DICT_COLUMN_NAMES order. */
  dicts: FooterDict[];
  blocks: FooterBlock[];
  /** Column-major: chunks[column * blocks.length + block]. */
  chunks: FooterChunk[];
  bloom: FooterChunk;
  /** Format 2 and later: the stored id index's chunks (id-index.ts); null in a format 1 file. */
  idIndex: FooterIdChunk[] | null;
  /** From the trailer, and repeated at the footer's end from format 3 (when id index chunks carry payload hashes). */
  formatVersion: number;
}

export interface FooterIdChunk extends FooterChunk {
  /** The chunk's smallest (first) id hash. */
  firstHash: number;
}

const ACCOUNT_DICT = DICT_COLUMN_NAMES.indexOf('account_id');
const PRODUCT_DICT = DICT_COLUMN_NAMES.indexOf('product_id');
const METER_DICT = DICT_COLUMN_NAMES.indexOf('meter_id');
const MODEL_DICT = DICT_COLUMN_NAMES.indexOf('model_id');
const DIMENSIONS_DICT = DICT_COLUMN_NAMES.indexOf('dimensions');

export function encodeFooter(f: FooterData, zstdLevel: number): Uint8Array {
  const w = new ByteWriter(1024);
  w.writeVarUint(f.info.segmentId);
  w.writeString(f.info.day);
  w.writeVarUint(f.info.bucket);
  w.writeVarUint(f.info.createdAtMs);
  w.writeVarUint(f.rowCount);
  w.writeVarUint(f.minTimestampMs);
  w.writeVarUint(f.maxTimestampMs - f.minTimestampMs);
  for (const d of f.dicts) {
    // Dimension sets are stored as key/value codes when they are all canonical string maps.
    const maps = d === f.dicts[DIMENSIONS_DICT] ? parseCanonicalMaps(d.values) : null;
    w.writeU8((d.hasNull ? DICT_FLAG_HAS_NULL : 0) | (maps !== null ? DICT_FLAG_DIMENSION_PAIRS : 0));
    if (maps !== null) writeDimensionDict(w, maps);
    else writeFrontCoded(w, d.values);
  }
  w.writeVarUint(f.blocks.length);
  for (const b of f.blocks) {
    w.writeVarUint(b.rowCount);
    w.writeVarUint(b.minTimestampMs - f.minTimestampMs);
    w.writeVarUint(b.maxTimestampMs - b.minTimestampMs);
    w.writeVarUint(b.minAccountCode);
    w.writeVarUint(b.maxAccountCode - b.minAccountCode);
  }
  for (const c of f.chunks) {
    w.writeVarUint(c.length);
    w.writeU32LE(c.crc);
  }
  w.writeVarUint(f.bloom.length);
  w.writeU32LE(f.bloom.crc);
  if (f.idIndex !== null) {
    w.writeVarUint(f.idIndex.length);
    for (const c of f.idIndex) {
      w.writeU32LE(c.firstHash);
      w.writeVarUint(c.length);
      w.writeU32LE(c.crc);
    }
  }
  // Format 3 repeats its version inside the checksummed footer: the trailer's version byte is
  // covered by no checksum, and one flipped bit (3 -> 2 or 1) would have its id index chunks
  // read in an older layout, and an id then never found.
  if (f.formatVersion >= FORMAT_VERSION_3) w.writeU8(f.formatVersion);
  const raw = w.finish();
  const compressed = zstdCompress(raw, zstdLevel);
  const useZstd = compressed.length < raw.length;
  const body = useZstd ? compressed : raw;
  const out = new Uint8Array(1 + body.length);
  out[0] = useZstd ? FOOTER_ZSTD : FOOTER_RAW;
  out.set(body, 1);
  return out;
}

/** Parses a stored footer (already CRC-checked); structural problems throw DecodeError. */
export function decodeFooter(stored: Uint8Array, formatVersion = FORMAT_VERSION): FooterData {
  if (stored.length < 1) throw new DecodeError('footer is empty');
  const mode = stored[0];
  if (mode !== FOOTER_RAW && mode !== FOOTER_ZSTD)
    throw new DecodeError(`footer: unknown compression ${mode}`);
  const bytes = mode === FOOTER_ZSTD ? zstdDecompress(stored.subarray(1)) : stored.subarray(1);
  const r = new ByteReader(bytes);
  const segmentId = r.readVarUint();
  const day = r.readString();
  if (!isDay(day)) throw new DecodeError(`footer: bad day ${JSON.stringify(day)}`);
  const bucket = r.readVarUint();
  const createdAtMs = r.readVarUint();
  const rowCount = r.readVarUint();
  if (rowCount < 1 || rowCount > SEGMENT_ROWS_MAX) throw new DecodeError(`footer: bad row count ${rowCount}`);
  const minTimestampMs = r.readVarUint();
  const maxTimestampMs = minTimestampMs + r.readVarUint();
  const dicts: FooterDict[] = [];
  for (let d = 0; d < DICT_COLUMN_COUNT; d++) {
    const flags = r.readU8();
    if ((flags & ~(DICT_FLAG_HAS_NULL | DICT_FLAG_DIMENSION_PAIRS)) !== 0)
      throw new DecodeError(`footer: bad dictionary flags ${flags}`);
    const values =
      flags & DICT_FLAG_DIMENSION_PAIRS ? readDimensionDict(r, rowCount) : readFrontCoded(r, rowCount);
    dicts.push({ hasNull: (flags & DICT_FLAG_HAS_NULL) !== 0, values });
  }
  const blockCount = r.readVarUint();
  if (blockCount < 1 || blockCount > rowCount) throw new DecodeError(`footer: bad block count ${blockCount}`);
  const accounts = dicts[ACCOUNT_DICT].values.length;
  const blocks: FooterBlock[] = [];
  let rows = 0;
  for (let b = 0; b < blockCount; b++) {
    const block: FooterBlock = {
      rowCount: r.readVarUint(),
      minTimestampMs: minTimestampMs + r.readVarUint(),
      maxTimestampMs: 0,
      minAccountCode: 0,
      maxAccountCode: 0,
    };
    block.maxTimestampMs = block.minTimestampMs + r.readVarUint();
    block.minAccountCode = r.readVarUint();
    block.maxAccountCode = block.minAccountCode + r.readVarUint();
    if (block.rowCount < 1 || block.maxAccountCode >= accounts || block.maxTimestampMs > maxTimestampMs) {
      throw new DecodeError(`footer: block ${b} metadata out of range`);
    }
    rows += block.rowCount;
    blocks.push(block);
  }
  if (rows !== rowCount) throw new DecodeError(`footer: blocks hold ${rows} rows, segment ${rowCount}`);
  const chunks: FooterChunk[] = [];
  for (let i = 0; i < COLUMN_COUNT * blockCount; i++)
    chunks.push({ length: r.readVarUint(), crc: r.readU32LE() });
  const bloom = { length: r.readVarUint(), crc: r.readU32LE() };
  let idIndex: FooterIdChunk[] | null = null;
  if (formatVersion >= 2) {
    const count = r.readVarUint();
    if (count > rowCount) throw new DecodeError(`footer: bad id index chunk count ${count}`);
    idIndex = [];
    for (let i = 0; i < count; i++)
      idIndex.push({ firstHash: r.readU32LE(), length: r.readVarUint(), crc: r.readU32LE() });
  }
  if (formatVersion >= FORMAT_VERSION_3) {
    const stored = r.readU8();
    if (stored !== formatVersion)
      throw new DecodeError(`footer: format version ${stored}, the trailer says ${formatVersion}`);
  }
  if (!r.atEnd()) throw new DecodeError(`footer: ${r.remaining} trailing bytes`);
  return {
    info: { segmentId, day, bucket, createdAtMs },
    rowCount,
    minTimestampMs,
    maxTimestampMs,
    dicts,
    blocks,
    chunks,
    bloom,
    idIndex,
    formatVersion,
  };
}

export function metaOf(f: FooterData): SegmentMeta {
  const accounts = f.dicts[ACCOUNT_DICT].values;
  let firstRow = 0;
  const blocks: BlockMeta[] = f.blocks.map((b) => {
    const meta: BlockMeta = {
      firstRow,
      rowCount: b.rowCount,
      minTimestampMs: b.minTimestampMs,
      maxTimestampMs: b.maxTimestampMs,
      minAccountId: accounts[b.minAccountCode],
      maxAccountId: accounts[b.maxAccountCode],
    };
    firstRow += b.rowCount;
    return meta;
  });
  const models = f.dicts[MODEL_DICT];
  return {
    ...f.info,
    formatVersion: f.formatVersion,
    rowCount: f.rowCount,
    minTimestampMs: f.minTimestampMs,
    maxTimestampMs: f.maxTimestampMs,
    minAccountId: accounts[0],
    maxAccountId: accounts[accounts.length - 1],
    accountIds: [...accounts],
    productIds: [...f.dicts[PRODUCT_DICT].values],
    meterIds: [...f.dicts[METER_DICT].values],
    modelIds: models.hasNull ? [null, ...models.values] : [...models.values],
    blocks,
  };
}

export function encodeTrailer(footerLength: number, footerCrc: number, formatVersion: number): Uint8Array {
  const out = new Uint8Array(TRAILER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, footerLength, true);
  view.setUint32(4, footerCrc, true);
  out[8] = formatVersion;
  out.set(SEGMENT_MAGIC, 9);
  return out;
}

/** Parses the trailer; the caller maps a thrown DecodeError to SegmentCorruptError. */
export function decodeTrailer(trailer: Uint8Array): {
  footerLength: number;
  footerCrc: number;
  formatVersion: number;
} {
  if (trailer.length !== TRAILER_BYTES)
    throw new DecodeError(`trailer is ${trailer.length} bytes, expected ${TRAILER_BYTES}`);
  for (let i = 0; i < SEGMENT_MAGIC.length; i++) {
    if (trailer[9 + i] !== SEGMENT_MAGIC[i])
      throw new DecodeError('trailer magic is not USEG (not a segment file, or its tail is damaged)');
  }
  if (trailer[8] < FORMAT_VERSION_1 || trailer[8] > FORMAT_VERSION)
    throw new DecodeError(
      `unsupported segment format version ${trailer[8]} (this build reads ${FORMAT_VERSION_1} to ${FORMAT_VERSION})`,
    );
  const view = new DataView(trailer.buffer, trailer.byteOffset, TRAILER_BYTES);
  return {
    footerLength: view.getUint32(0, true),
    footerCrc: view.getUint32(4, true),
    formatVersion: trailer[8],
  };
}
