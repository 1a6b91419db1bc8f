/**
 * Encodes one immutable raw segment (`.useg`) from sorted EventColumns. Layout and encodings:
 * docs/segment-format.md.
 *
 * Invariants:
 * - input rows are sorted by (account_id, product_id, meter_id, model_id (null first),
 *   timestamp_ms), comparing string values with JS `<` (UTF-16 code units, the order of
 *   sortRowsForSegment); rowCount > 0; event ids are distinct. Violations throw before any byte
 *   is produced;
 * - dictionaries are per segment: only the values present, sorted, so codes follow the sort
 *   order and stored key columns collapse to runs;
 * - the encoded bytes are verified (parsed and fully decoded, compared with the input) before
 *   they are returned, unless options.verify is false.
 */

import {
  COLUMN_NAMES,
  type ColumnName,
  DICT_COLUMN_NAMES,
  type DictColumn,
  type DictColumnName,
  type EventColumns,
  KIND_NAMES,
  NULL_CODE,
} from '../../model/columns.ts';
import { hash128Into } from '../../model/hash.ts';
import { payloadHashesOfColumns } from '../../model/payload-hash.ts';
import { BloomFilter } from '../encoding/bloom-filter.ts';
import {
  buildIdIndex,
  type IdIndex,
  encodeIdIndexChunk,
  idIndexChunkEntries,
  rowBitsOf,
  storedHashShift,
} from '../id-index.ts';
import { crc32c } from '../encoding/crc32c.ts';
import { ZSTD_LEVEL_MAX, ZSTD_LEVEL_MIN } from '../encoding/zstd.ts';
import {
  type Candidate,
  eventIdCandidates,
  nullableStringCandidates,
  packSmallest,
  ZstdPayoff,
  quantityCandidates,
  smallIntCandidates,
  timestampCandidates,
} from './column-chunk.ts';
import {
  encodeFooter,
  encodeTrailer,
  type FooterBlock,
  type FooterData,
  type FooterDict,
  type FooterIdChunk,
  metaOf,
} from './segment-footer.ts';
import {
  BLOCK_ROWS_MAX,
  DEFAULT_BLOCK_ROWS,
  DEFAULT_BLOOM_BITS_PER_KEY,
  DEFAULT_ZSTD_LEVEL,
  type EncodedSegment,
  FORMAT_VERSION,
  FORMAT_VERSION_2,
  isDay,
  NULLABLE_DICT_COLUMNS,
  SEGMENT_MAGIC,
  SEGMENT_ROWS_MAX,
  STREAM_COMPRESS_MIN_BYTES,
  type SegmentInfo,
} from './segment-format.ts';
import { verifyEncodedSegment } from './segment-verify.ts';

export type { BlockMeta, EncodedSegment, SegmentInfo, SegmentMeta } from './segment-format.ts';

export interface EncodeSegmentOptions {
  /** Rows per block (the unit of skipping and of decoding); default 4096. */
  blockRows?: number;
  /** zstd level of every compressed stream; default DEFAULT_ZSTD_LEVEL. */
  zstdLevel?: number;
  /** Streams shorter than this are stored raw; default STREAM_COMPRESS_MIN_BYTES. */
  compressMinBytes?: number;
  /** Bloom filter bits per event id; default 8 (about 2% false positives). */
  bloomBitsPerKey?: number;
  /** Decode the result and compare it with the input before returning; default true. */
  verify?: boolean;
  /**
   * Rows where a new partition run starts (ascending, first 0). A block never spans two runs,
   * and rows need only be sorted within a run: one file then holds many (day, bucket)
   * partitions, each a contiguous range of blocks. Default: one run.
   */
  runStarts?: readonly number[];
  /**
   * Store each id index entry's payload hash (format 3); default true. False writes format 2,
   * which readers still accept: only tests of that path ask for it.
   */
  payloadHashes?: boolean;
}

/** A dict column re-coded against its segment dictionary. */
export interface SegmentDictColumn extends FooterDict {
  /** Per row: the code into `values`, shifted up by one when hasNull (0 = null). */
  stored: Uint32Array;
}

export function encodeSegment(
  columns: EventColumns,
  info: SegmentInfo,
  options: EncodeSegmentOptions = {},
): EncodedSegment {
  const blockRows = options.blockRows ?? DEFAULT_BLOCK_ROWS;
  const zstdLevel = options.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
  const compressMinBytes = options.compressMinBytes ?? STREAM_COMPRESS_MIN_BYTES;
  const bloomBitsPerKey = options.bloomBitsPerKey ?? DEFAULT_BLOOM_BITS_PER_KEY;
  checkOptions(blockRows, zstdLevel, bloomBitsPerKey);
  checkInfo(info);
  checkColumns(columns);
  const dicts = new Map<DictColumnName, SegmentDictColumn>();
  for (const name of DICT_COLUMN_NAMES) dicts.set(name, segmentDict(columns[name], name, columns.rowCount));
  const runStarts = options.runStarts ?? [0];
  checkRunStarts(runStarts, columns.rowCount);
  checkSorted(columns, dicts, runStarts);
  const filter = BloomFilter.create(columns.rowCount, bloomBitsPerKey);
  // Three words of each id's hash, in typed arrays: an array of 250k hash objects lived
  // through the whole encode (old-generation garbage in the worker).
  const n = columns.rowCount;
  const idH1 = new Uint32Array(n);
  const idH2 = new Uint32Array(n);
  const idH3 = new Uint32Array(n);
  const h = new Uint32Array(4);
  for (let r = 0; r < n; r++) {
    hash128Into(columns.event_id[r], h);
    idH1[r] = h[0];
    idH2[r] = h[1];
    idH3[r] = h[2];
    filter.add(h[0], h[1]);
  }

  const blocks = cutBlocks(columns, dicts.get('account_id') as SegmentDictColumn, blockRows, runStarts);
  const chunkBytes: Uint8Array[] = [];
  for (const name of COLUMN_NAMES) {
    let start = 0;
    const payoff = new ZstdPayoff();
    for (const block of blocks) {
      const end = start + block.rowCount;
      chunkBytes.push(
        packSmallest(candidatesFor(columns, dicts, name, start, end), zstdLevel, compressMinBytes, payoff),
      );
      start = end;
    }
  }
  const bloomBytes = filter.toBytes();
  const idIndex = buildIdIndex(idH3);
  checkDistinctIds(columns.event_id, idIndex);
  const withPayload = options.payloadHashes !== false;
  const formatVersion = withPayload ? FORMAT_VERSION : FORMAT_VERSION_2;
  // Computed for every file: a flush's hot window keeps them too (encode-flush.ts).
  const payloadHashes = payloadHashesOfColumns(columns, { h1: idH1, h2: idH2 });
  const rowBits = rowBitsOf(n);
  const shift = storedHashShift(n);
  const idChunks: Uint8Array[] = [];
  const idDir: FooterIdChunk[] = [];
  const chunkEntries = idIndexChunkEntries(formatVersion);
  for (let from = 0; from < n; from += chunkEntries) {
    const to = Math.min(n, from + chunkEntries);
    const bytes = encodeIdIndexChunk(
      idIndex,
      from,
      to,
      rowBits,
      shift,
      withPayload ? payloadHashes : undefined,
    );
    idChunks.push(bytes);
    idDir.push({ firstHash: idIndex.hashes[from] >>> shift, length: bytes.length, crc: crc32c(bytes) });
  }
  const footer: FooterData = {
    info: { segmentId: info.segmentId, day: info.day, bucket: info.bucket, createdAtMs: info.createdAtMs },
    rowCount: columns.rowCount,
    minTimestampMs: blocks.reduce((min, b) => Math.min(min, b.minTimestampMs), Number.POSITIVE_INFINITY),
    maxTimestampMs: blocks.reduce((max, b) => Math.max(max, b.maxTimestampMs), 0),
    dicts: DICT_COLUMN_NAMES.map((name) => {
      const d = dicts.get(name) as SegmentDictColumn;
      return { values: d.values, hasNull: d.hasNull };
    }),
    blocks,
    chunks: chunkBytes.map((c) => ({ length: c.length, crc: crc32c(c) })),
    bloom: { length: bloomBytes.length, crc: crc32c(bloomBytes) },
    idIndex: idDir,
    formatVersion,
  };
  const bytes = assemble(
    [...chunkBytes, ...idChunks],
    bloomBytes,
    encodeFooter(footer, zstdLevel),
    footer.formatVersion,
  );
  const encoded: EncodedSegment = {
    bytes,
    meta: metaOf(footer),
    checksum: crc32c(bytes),
    idIndex,
    idHashes: { h1: idH1, h2: idH2 },
    payloadHashes,
  };
  if (options.verify !== false) verifyEncodedSegment(encoded, columns);
  return encoded;
}

function assemble(
  chunks: Uint8Array[],
  bloom: Uint8Array,
  footer: Uint8Array,
  formatVersion: number,
): Uint8Array {
  const trailer = encodeTrailer(footer.length, crc32c(footer), formatVersion);
  const parts = [SEGMENT_MAGIC, ...chunks, bloom, footer, trailer];
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function candidatesFor(
  columns: EventColumns,
  dicts: Map<DictColumnName, SegmentDictColumn>,
  name: ColumnName,
  start: number,
  end: number,
): Candidate[] {
  switch (name) {
    case 'event_id':
      return eventIdCandidates(columns.event_id.slice(start, end));
    case 'kind':
      return smallIntCandidates(columns.kind.subarray(start, end));
    case 'correction_original_event_id':
    case 'correction_reason':
      return nullableStringCandidates(columns[name].slice(start, end));
    case 'timestamp_ms':
    case 'ingested_at_ms':
      return timestampCandidates(columns[name].subarray(start, end));
    case 'quantity':
      return quantityCandidates(columns.quantity, start, end);
    default:
      return smallIntCandidates((dicts.get(name) as SegmentDictColumn).stored.subarray(start, end));
  }
}

// ---- preconditions ----------------------------------------------------------------------

function checkOptions(blockRows: number, zstdLevel: number, bloomBitsPerKey: number): void {
  if (!(Number.isInteger(blockRows) && blockRows >= 1 && blockRows <= BLOCK_ROWS_MAX)) {
    throw new RangeError(`encodeSegment: blockRows ${blockRows} is outside 1..${BLOCK_ROWS_MAX}`);
  }
  if (!(Number.isInteger(zstdLevel) && zstdLevel >= ZSTD_LEVEL_MIN && zstdLevel <= ZSTD_LEVEL_MAX)) {
    throw new RangeError(
      `encodeSegment: zstdLevel ${zstdLevel} is outside ${ZSTD_LEVEL_MIN}..${ZSTD_LEVEL_MAX}`,
    );
  }
  if (!(bloomBitsPerKey > 0 && bloomBitsPerKey <= 64))
    throw new RangeError(`encodeSegment: bloomBitsPerKey ${bloomBitsPerKey} is outside (0, 64]`);
}

function checkInfo(info: SegmentInfo): void {
  if (!(Number.isSafeInteger(info.segmentId) && info.segmentId >= 0))
    throw new Error(`encodeSegment: bad segmentId ${info.segmentId}`);
  if (!isDay(info.day)) throw new Error(`encodeSegment: day ${JSON.stringify(info.day)} is not YYYY-MM-DD`);
  if (!(Number.isSafeInteger(info.bucket) && info.bucket >= 0))
    throw new Error(`encodeSegment: bad bucket ${info.bucket}`);
  if (!(Number.isSafeInteger(info.createdAtMs) && info.createdAtMs >= 0))
    throw new Error(`encodeSegment: bad createdAtMs ${info.createdAtMs}`);
}

function checkColumns(c: EventColumns): void {
  const n = c.rowCount;
  if (!(Number.isInteger(n) && n > 0 && n <= SEGMENT_ROWS_MAX))
    throw new Error(`encodeSegment: rowCount ${n} is outside 1..${SEGMENT_ROWS_MAX}`);
  const lengths: [string, number][] = [
    ['event_id', c.event_id.length],
    ['kind', c.kind.length],
    ['correction_original_event_id', c.correction_original_event_id.length],
    ['correction_reason', c.correction_reason.length],
    ['timestamp_ms', c.timestamp_ms.length],
    ['quantity', c.quantity.values.length],
    ['ingested_at_ms', c.ingested_at_ms.length],
    ...DICT_COLUMN_NAMES.map((name): [string, number] => [name, c[name].codes.length]),
  ];
  for (const [name, length] of lengths) {
    if (length !== n) throw new Error(`encodeSegment: column ${name} has ${length} rows, expected ${n}`);
  }
  for (let i = 0; i < n; i++) {
    if (c.kind[i] >= KIND_NAMES.length) throw new Error(`encodeSegment: row ${i} has kind code ${c.kind[i]}`);
    const ts = c.timestamp_ms[i];
    const ingested = c.ingested_at_ms[i];
    if (!(Number.isSafeInteger(ts) && ts > 0))
      throw new Error(`encodeSegment: row ${i} timestamp_ms ${ts} is not a positive safe integer`);
    if (!(Number.isSafeInteger(ingested) && ingested >= 0)) {
      throw new Error(
        `encodeSegment: row ${i} ingested_at_ms ${ingested} is not a non-negative safe integer`,
      );
    }
  }
  for (let i = 0; i < n; i++) {
    const id = c.event_id[i];
    if (typeof id !== 'string' || id.length === 0)
      throw new Error(`encodeSegment: row ${i} has an empty event_id`);
  }
}

/**
 * Event ids are distinct. Equal ids have equal hashes, so they sit side by side in the id
 * index (sorted by hash): only the rows of a run of equal hashes are compared as strings (a
 * 250k-row flush has a few such runs, from 32-bit collisions), with no sort of its own.
 */
function checkDistinctIds(ids: readonly string[], index: IdIndex): void {
  const { hashes, rows } = index;
  for (let i = 1; i < hashes.length; i++) {
    if (hashes[i] !== hashes[i - 1]) continue;
    let end = i + 1;
    while (end < hashes.length && hashes[end] === hashes[i]) end++;
    const seen = new Set<string>();
    for (let k = i - 1; k < end; k++) {
      const id = ids[rows[k]];
      if (seen.has(id))
        throw new Error(`encodeSegment: event_id ${JSON.stringify(id)} appears twice (row ${rows[k]})`);
      seen.add(id);
    }
    i = end - 1;
  }
}

/** Re-codes a column against the sorted distinct values it uses (input dicts may be memtable-wide). */
export function segmentDict(col: DictColumn, name: DictColumnName, rowCount: number): SegmentDictColumn {
  const { codes, dict } = col;
  // Per input code: 1 once a row uses it. Typed arrays, not a Set of strings: a flush codes
  // 8 columns of ~250k rows, and dictionaries are small.
  const usedCodes = new Uint8Array(dict.length);
  let hasNull = false;
  for (let i = 0; i < rowCount; i++) {
    const code = codes[i];
    if (code === NULL_CODE) hasNull = true;
    else if (code < dict.length) usedCodes[code] = 1;
    else throw new Error(`encodeSegment: ${name} row ${i} has code ${code} outside its dictionary`);
  }
  if (hasNull && !NULLABLE_DICT_COLUMNS.has(name))
    throw new Error(`encodeSegment: ${name} is required but holds a null`);
  const used = new Set<string>();
  for (let code = 0; code < dict.length; code++) {
    if (usedCodes[code] === 0) continue;
    const value = dict[code];
    if (typeof value !== 'string') throw new Error(`encodeSegment: ${name} code ${code} is not a string`);
    used.add(value);
  }
  const values = [...used].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const shift = hasNull ? 1 : 0;
  const byValue = new Map<string, number>();
  for (let i = 0; i < values.length; i++) byValue.set(values[i], i + shift);
  // Input code -> stored code (equal values in two input codes share one stored code).
  const storedOfCode = new Uint32Array(dict.length);
  for (let code = 0; code < dict.length; code++)
    if (usedCodes[code] === 1) storedOfCode[code] = byValue.get(dict[code]) as number;
  const stored = new Uint32Array(rowCount);
  for (let i = 0; i < rowCount; i++) {
    const code = codes[i];
    if (code !== NULL_CODE) stored[i] = storedOfCode[code]; // null is stored 0
  }
  return { values, hasNull, stored };
}

/** The segment order over stored codes (code order is value order; null model is 0). */
function checkRunStarts(runStarts: readonly number[], rowCount: number): void {
  if (runStarts[0] !== 0) throw new Error('encodeSegment: runStarts must begin with 0');
  for (let i = 1; i < runStarts.length; i++) {
    if (!(runStarts[i] > runStarts[i - 1] && runStarts[i] < rowCount)) {
      throw new Error(
        `encodeSegment: runStarts[${i}] = ${runStarts[i]} is not ascending inside 0..${rowCount - 1}`,
      );
    }
  }
}

function checkSorted(
  c: EventColumns,
  dicts: Map<DictColumnName, SegmentDictColumn>,
  runStarts: readonly number[],
): void {
  const keys = (['account_id', 'product_id', 'meter_id', 'model_id'] as const).map(
    (k) => (dicts.get(k) as SegmentDictColumn).stored,
  );
  const ts = c.timestamp_ms;
  const newRun = new Set(runStarts);
  for (let i = 1; i < c.rowCount; i++) {
    if (newRun.has(i)) continue;
    let order = 0;
    for (let k = 0; k < keys.length && order === 0; k++) order = keys[k][i - 1] - keys[k][i];
    if (order === 0) order = ts[i - 1] - ts[i];
    if (order > 0) {
      throw new Error(
        `encodeSegment: rows ${i - 1} and ${i} are not sorted by (account_id, product_id, meter_id, model_id, timestamp_ms)`,
      );
    }
  }
}

function cutBlocks(
  c: EventColumns,
  accounts: SegmentDictColumn,
  blockRows: number,
  runStarts: readonly number[],
): FooterBlock[] {
  const blocks: FooterBlock[] = [];
  let nextRun = 1;
  let start = 0;
  while (start < c.rowCount) {
    while (nextRun < runStarts.length && runStarts[nextRun] <= start) nextRun++;
    const runEnd = nextRun < runStarts.length ? runStarts[nextRun] : c.rowCount;
    const end = Math.min(runEnd, start + blockRows);
    let minTs = c.timestamp_ms[start];
    let maxTs = minTs;
    for (let i = start + 1; i < end; i++) {
      const ts = c.timestamp_ms[i];
      if (ts < minTs) minTs = ts;
      if (ts > maxTs) maxTs = ts;
    }
    // Sorted by account first: the block's first and last rows bound its accounts.
    blocks.push({
      rowCount: end - start,
      minTimestampMs: minTs,
      maxTimestampMs: maxTs,
      minAccountCode: accounts.stored[start],
      maxAccountCode: accounts.stored[end - 1],
    });
    start = end;
  }
  return blocks;
}
