/**
 * The persisted constants and shapes of a raw segment file (`.useg`), shared by the writer and
 * the reader. Everything numbered here is on disk: persisted, never renumber; a change of
 * layout bumps FORMAT_VERSION. The byte layout is documented in docs/segment-format.md.
 *
 * Invariants:
 * - a file is: SEGMENT_MAGIC, the column chunks (column-major: every block of column 0, then
 *   column 1, ...), the event-id Bloom filter, the footer, the TRAILER_BYTES trailer;
 * - every region is covered by a CRC32C held by its parent (chunks and filter: footer; footer:
 *   trailer; whole file: the manifest entry);
 * - column ids are the indexes of COLUMN_NAMES.
 */

import type { IdIndex } from '../id-index.ts';
import {
  COLUMN_NAMES,
  type ColumnName,
  DICT_COLUMN_NAMES,
  type DictColumnName,
  KIND_NAMES,
} from '../../model/columns.ts';

/** "USEG": first four and last four bytes of every segment file. */
export const SEGMENT_MAGIC = Uint8Array.of(0x55, 0x53, 0x45, 0x47);
/**
 * Format 2 adds the stored id index; format 3 adds each index entry's payload hash (id-index.ts).
 * Files of formats 1 and 2 stay readable.
 */
export const FORMAT_VERSION = 3;
export const FORMAT_VERSION_3 = 3;
export const FORMAT_VERSION_2 = 2;
export const FORMAT_VERSION_1 = 1;
/** u32 footer length, u32 footer crc32c, u8 format version, 4-byte magic. */
export const TRAILER_BYTES = 13;
export const HEADER_BYTES = SEGMENT_MAGIC.length;

export const DEFAULT_BLOCK_ROWS = 4096;
export const BLOCK_ROWS_MAX = 1 << 20;
/**
 * zstd level, by measurement on a 370k-row flush of the bench workload (64 buckets): level 19
 * 25.11 bytes/event in 2.75 s, level 9 25.48 in 2.02 s, level 3 25.53 in 2.00 s. Flush
 * encoding bounds sustained ingest, so 9: most of 19's bytes at 3's speed.
 */
export const DEFAULT_ZSTD_LEVEL = 9;
export const DEFAULT_BLOOM_BITS_PER_KEY = 8;
/** Rows per segment: bounds memory of one decode and keeps row numbers exact everywhere. */
export const SEGMENT_ROWS_MAX = 1 << 26;
/** Tail read by readSegmentFooter in one go (footer and filter usually fit). */
export const FOOTER_TAIL_READ_BYTES = 64 * 1024;
/** Streams shorter than this are stored raw: zstd rarely wins below it, and each call costs a context (measured: 64 keeps the bytes of 12 and halves the encode time of a 2,000-partition flush). */
export const STREAM_COMPRESS_MIN_BYTES = 64;

/** Column id of a column: its index in COLUMN_NAMES (persisted order). */
export const COLUMN_ID: Readonly<Record<ColumnName, number>> = Object.fromEntries(
  COLUMN_NAMES.map((name, id) => [name, id]),
) as Record<ColumnName, number>;
export const COLUMN_COUNT = COLUMN_NAMES.length;
/** Dictionary ids in the footer: indexes of DICT_COLUMN_NAMES. */
export const DICT_COLUMN_COUNT = DICT_COLUMN_NAMES.length;

/** Chunk encodings (first byte of every chunk). Persisted, never renumber. */
export const Encoding = {
  /** (value, run length) varint pairs. Streams: values, runs. */
  RUNS: 1,
  /** Fixed-width byte planes. Streams: [u8 width, planes]. */
  PLANES: 2,
  /** Bit-class coded deltas. Streams: classes, mantissa bits. */
  DELTA_BIT_CLASS: 3,
  /** Distinct values + plane codes. Streams: values, codes. */
  VALUE_DICT: 4,
  /** Length-prefixed UTF-8. Streams: flags + lengths, bytes. */
  STRINGS: 5,
  /** Mixed-radix packed equal-length strings. Streams: header, packed bits. */
  RADIX_STRINGS: 6,
  /** Null runs + strings of the non-nulls. Streams: runs, flags + lengths, bytes. */
  NULLABLE_STRINGS: 7,
  /** Bit-class safe integers + zigzag bigints. Streams: classes, mantissa bits, bigs. */
  QUANTITY_BIT_CLASS: 8,
} as const;
export type EncodingId = (typeof Encoding)[keyof typeof Encoding];

/** Stream storage, the low bit of each stream's length varint. Persisted. */
export const STREAM_RAW = 0;
export const STREAM_ZSTD = 1;
/** First byte of the footer. Persisted. */
export const FOOTER_RAW = 0;
export const FOOTER_ZSTD = 1;
/** Dictionary flags in the footer. */
export const DICT_FLAG_HAS_NULL = 1;
/** The dictionary is stored in the dimension-dict form (keys, values, codes), not as strings. */
export const DICT_FLAG_DIMENSION_PAIRS = 2;

/** How a column is stored, and the encodings a reader accepts for it. */
export type ColumnKind = 'event_id' | 'kind' | 'nullable_string' | 'dict' | 'timestamp' | 'quantity';

export const COLUMN_KIND: Readonly<Record<ColumnName, ColumnKind>> = {
  event_id: 'event_id',
  kind: 'kind',
  correction_original_event_id: 'nullable_string',
  correction_reason: 'nullable_string',
  account_id: 'dict',
  subscription_id: 'dict',
  product_id: 'dict',
  meter_id: 'dict',
  model_id: 'dict',
  unit: 'dict',
  source: 'dict',
  dimensions: 'dict',
  timestamp_ms: 'timestamp',
  quantity: 'quantity',
  ingested_at_ms: 'timestamp',
};

export const ENCODINGS_BY_KIND: Readonly<Record<ColumnKind, readonly EncodingId[]>> = {
  event_id: [Encoding.RADIX_STRINGS, Encoding.STRINGS],
  kind: [Encoding.RUNS, Encoding.PLANES],
  nullable_string: [Encoding.NULLABLE_STRINGS],
  dict: [Encoding.RUNS, Encoding.PLANES],
  timestamp: [Encoding.DELTA_BIT_CLASS, Encoding.VALUE_DICT],
  quantity: [Encoding.QUANTITY_BIT_CLASS],
};

/** Stored kind codes are below this. */
export const KIND_LIMIT = KIND_NAMES.length;

/** Dict columns whose values may be null (the data model's optional fields). */
export const NULLABLE_DICT_COLUMNS: ReadonlySet<DictColumnName> = new Set(['subscription_id', 'model_id']);

// ---- shapes shared by writer and reader ----------------------------------------------------

export interface SegmentInfo {
  segmentId: number;
  /** UTC day of every row, YYYY-MM-DD. */
  day: string;
  bucket: number;
  createdAtMs: number;
}

export interface BlockMeta {
  firstRow: number;
  rowCount: number;
  minTimestampMs: number;
  maxTimestampMs: number;
  minAccountId: string;
  maxAccountId: string;
}

export interface SegmentMeta extends SegmentInfo {
  formatVersion: number;
  rowCount: number;
  minTimestampMs: number;
  maxTimestampMs: number;
  minAccountId: string;
  maxAccountId: string;
  /** Distinct values present in the segment, sorted (null first in modelIds when present). */
  accountIds: string[];
  productIds: string[];
  meterIds: string[];
  modelIds: (string | null)[];
  blocks: BlockMeta[];
}

export interface EncodedSegment {
  bytes: Uint8Array;
  meta: SegmentMeta;
  /** CRC32C of the whole file (the manifest keeps it with the size). */
  checksum: number;
  /** The file's id index (id-index.ts), from the id hashes the writer computes anyway. */
  idIndex: IdIndex;
  /** hash128 words h1, h2 of each row's event id (file order), for the database id filter. */
  idHashes: { h1: Uint32Array; h2: Uint32Array };
  /**
   * Each row's payload hash (model/payload-hash.ts), four words per row in file order: stored
   * in the id index (format 3), and the flush's hot window keeps them.
   */
  payloadHashes: Uint32Array;
}

/** Byte range and checksum of one stored region. */
export interface RegionRef {
  offset: number;
  length: number;
  crc: number;
}

export class SegmentCorruptError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SegmentCorruptError';
  }
}

/** Strict YYYY-MM-DD of a real calendar day. */
export function isDay(day: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return false;
  const ms = Date.parse(`${day}T00:00:00Z`);
  return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === day;
}
