/**
 * Reads raw segment files (`.useg`, docs/segment-format.md): verifies, parses the footer once,
 * and decodes projected columns of chosen blocks. This is the query hot path: dictionaries are
 * decoded once per reader and shared by every DictColumn it returns (treat them as read-only).
 *
 * Invariants:
 * - nothing is decoded from bytes whose CRC32C was not checked first: the trailer's footer CRC
 *   at open, the Bloom filter's CRC at open, each chunk's CRC on every read;
 * - the regions tile the file exactly: magic | chunks | id index chunks (format 2) | bloom |
 *   footer | trailer;
 * - every failure to verify or decode throws SegmentCorruptError naming the region.
 */

import {
  COLUMN_NAMES,
  type ColumnBatch,
  type ColumnName,
  DICT_COLUMN_NAMES,
  type DictColumn,
  type DictColumnName,
  type QuantityColumn,
} from '../../model/columns.ts';
import type { PackedIds } from '../../model/packed-ids.ts';
import { BloomFilter } from '../encoding/bloom-filter.ts';
import { crc32c } from '../encoding/crc32c.ts';
import { type ReadFile, readSmall } from '../fs/file-system.ts';
import {
  decodeEventIdBytes,
  decodeEventIds,
  decodeEventIdsAt,
  decodeNullableStringChunk,
  decodeQuantityChunkInto,
  decodeSmallIntAt,
  decodeSmallIntsInto,
  decodeTimestampsInto,
} from './column-chunk.ts';
import { decodeFooter, decodeTrailer, type FooterData, metaOf } from './segment-footer.ts';
import {
  COLUMN_ID,
  COLUMN_KIND,
  FOOTER_TAIL_READ_BYTES,
  HEADER_BYTES,
  KIND_LIMIT,
  type RegionRef,
  SEGMENT_MAGIC,
  SegmentCorruptError,
  type SegmentMeta,
  TRAILER_BYTES,
} from './segment-format.ts';

export type { BlockMeta, SegmentMeta } from './segment-format.ts';
export { SegmentCorruptError } from './segment-format.ts';

interface ParsedTail {
  footer: FooterData;
  meta: SegmentMeta;
  bloom: RegionRef;
  /** Column-major chunk regions: chunks[column * blockCount + block]. */
  chunks: RegionRef[];
  /** The stored id index's chunks (format 2), or null (format 1). */
  idIndex: IdIndexLayout | null;
}

/** Where a file's stored id index lies (id-index.ts): its chunks, each with its first hash. */
export interface IdIndexLayout {
  firstHashes: Uint32Array;
  regions: RegionRef[];
}

function corrupt(what: string, err?: unknown): SegmentCorruptError {
  const detail = err === undefined ? '' : `: ${(err as Error).message}`;
  return new SegmentCorruptError(`${what}${detail}`, err === undefined ? undefined : { cause: err });
}

/**
 * Parses trailer and footer given the file size and a function that returns bytes at absolute
 * offsets inside [tailStart, size). Returns the layout with absolute chunk offsets.
 */
function parseTail(size: number, tail: Uint8Array, tailStart: number): ParsedTail {
  if (size < HEADER_BYTES + TRAILER_BYTES)
    throw corrupt(`segment is ${size} bytes, too short for header and trailer`);
  let trailer: { footerLength: number; footerCrc: number; formatVersion: number };
  try {
    trailer = decodeTrailer(tail.subarray(tail.length - TRAILER_BYTES));
  } catch (err) {
    throw corrupt('segment trailer', err);
  }
  const footerEnd = size - TRAILER_BYTES;
  const footerStart = footerEnd - trailer.footerLength;
  if (trailer.footerLength < 1 || footerStart < HEADER_BYTES)
    throw corrupt(`segment trailer: footer length ${trailer.footerLength} does not fit the file`);
  if (footerStart < tailStart) throw new RangeError('parseTail: footer is outside the bytes given');
  const footerBytes = tail.subarray(footerStart - tailStart, footerEnd - tailStart);
  if (crc32c(footerBytes) !== trailer.footerCrc)
    throw corrupt('segment footer: checksum mismatch (footer or trailer damaged)');
  let footer: FooterData;
  try {
    footer = decodeFooter(footerBytes, trailer.formatVersion);
  } catch (err) {
    throw corrupt('segment footer', err);
  }
  // Chunks are contiguous after the magic; the id index (format 2) follows them, then the
  // filter, then the footer.
  const chunks: RegionRef[] = [];
  let offset = HEADER_BYTES;
  for (const c of footer.chunks) {
    chunks.push({ offset, length: c.length, crc: c.crc });
    offset += c.length;
  }
  let idIndex: IdIndexLayout | null = null;
  if (footer.idIndex !== null) {
    const regions: RegionRef[] = [];
    const firstHashes = new Uint32Array(footer.idIndex.length);
    footer.idIndex.forEach((c, i) => {
      regions.push({ offset, length: c.length, crc: c.crc });
      firstHashes[i] = c.firstHash;
      offset += c.length;
    });
    idIndex = { firstHashes, regions };
  }
  const bloom: RegionRef = { offset, length: footer.bloom.length, crc: footer.bloom.crc };
  if (offset + bloom.length !== footerStart) {
    throw corrupt(
      `segment footer: chunks and filter end at ${offset + bloom.length}, footer starts at ${footerStart}`,
    );
  }
  return { footer, meta: metaOf(footer), bloom, chunks, idIndex };
}

function parseBloom(bytes: Uint8Array, region: RegionRef): BloomFilter {
  if (crc32c(bytes) !== region.crc) throw corrupt('segment event-id filter: checksum mismatch');
  try {
    return BloomFilter.fromBytes(bytes);
  } catch (err) {
    throw corrupt('segment event-id filter', err);
  }
}

/** Bytes per row of each column kind's typed array (0: not a typed array). */
const TYPED_BYTES_PER_ROW: Record<(typeof COLUMN_KIND)[ColumnName], number> = {
  event_id: 0,
  nullable_string: 0,
  kind: 1,
  dict: 4,
  timestamp: 8,
  quantity: 8,
};

/** Bytes per row in slab order: widest first, then the string columns. */
const WIDTH_ORDER: readonly number[] = [8, 4, 1, 0];

/** Typed arrays carved from one zeroed buffer, widest first (so each view is aligned). */
class Slab {
  private readonly buffer: ArrayBuffer;
  private pos = 0;

  /** `reuse`: carve from this buffer (zeroed here) instead of a new one. */
  constructor(bytes: number, reuse?: ArrayBuffer) {
    if (reuse !== undefined && reuse.byteLength >= bytes) {
      new Uint8Array(reuse, 0, bytes).fill(0);
      this.buffer = reuse;
    } else this.buffer = new ArrayBuffer(bytes);
  }

  f64(n: number): Float64Array {
    const a = new Float64Array(this.buffer, this.pos, n);
    this.pos += n * 8;
    return a;
  }

  u32(n: number): Uint32Array {
    const a = new Uint32Array(this.buffer, this.pos, n);
    this.pos += n * 4;
    return a;
  }

  u8(n: number): Uint8Array {
    const a = new Uint8Array(this.buffer, this.pos, n);
    this.pos += n;
    return a;
  }
}

/** readRowAt's scratch (grows to the largest request). */
let rowScratch = new ArrayBuffer(0);

/** Row `row` of `batch` (columns `names`) as a batch of its own, copied out of `batch`. */
function rowOfBatch(batch: ColumnBatch, names: readonly ColumnName[], row: number): ColumnBatch {
  const out: ColumnBatch = { rowCount: 1 };
  for (const name of names) {
    switch (name) {
      case 'event_id':
        out.event_id = [(batch.event_id as string[])[row]];
        break;
      case 'correction_original_event_id':
      case 'correction_reason':
        out[name] = [(batch[name] as (string | null)[])[row]];
        break;
      case 'kind':
        out.kind = Uint8Array.of((batch.kind as Uint8Array)[row]);
        break;
      case 'timestamp_ms':
      case 'ingested_at_ms':
        out[name] = Float64Array.of((batch[name] as Float64Array)[row]);
        break;
      case 'quantity': {
        const q = batch.quantity as QuantityColumn;
        const big = q.big?.get(row);
        out.quantity = {
          values: Float64Array.of(q.values[row]),
          big: big === undefined ? null : new Map([[0, big]]),
        };
        break;
      }
      default: {
        const d = batch[name] as DictColumn;
        out[name] = { dict: d.dict, codes: Uint32Array.of(d.codes[row]) };
      }
    }
  }
  return out;
}

/** One chunk's place in a segment file. */
export interface ChunkPlace {
  column: ColumnName;
  block: number;
  offset: number;
  length: number;
  crc: number;
}

export class SegmentReader {
  readonly meta: SegmentMeta;
  /** The event-id filter (shared; do not mutate); null in a sparse reader (not read). */
  readonly filter: BloomFilter | null;
  /** The stored id index's layout (format 2), or null (format 1). */
  readonly idIndexLayout: IdIndexLayout | null;
  /** The whole file, or null for a sparse reader (chunks come from `fetchChunk`). */
  private readonly bytes: Uint8Array | null;
  private readonly fetchChunk: ((chunkIndex: number) => Uint8Array) | null;
  private readonly sizeBytes: number;
  private readonly footer: FooterData;
  private readonly chunks: RegionRef[];
  private readonly blockCount: number;
  private readonly bloomBytes: number;
  /**
   * The whole file's CRC32C matched the manifest at open: every chunk is then verified
   * already (the bytes are immutable in memory), so reads skip the per-chunk CRC.
   */
  private readonly fileVerified: boolean;
  private readonly tail: ParsedTail;

  private constructor(
    source: Uint8Array | { sizeBytes: number; fetchChunk: (chunkIndex: number) => Uint8Array },
    tail: ParsedTail,
    filter: BloomFilter | null,
    fileVerified: boolean,
  ) {
    if (source instanceof Uint8Array) {
      // A plain Uint8Array view even when the file came as a Buffer: every chunk and stream the
      // decoders see then has one map, so their optimized code stays monomorphic.
      this.bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
      this.fetchChunk = null;
      this.sizeBytes = source.byteLength;
    } else {
      this.bytes = null;
      this.fetchChunk = source.fetchChunk;
      this.sizeBytes = source.sizeBytes;
    }
    this.tail = tail;
    this.footer = tail.footer;
    this.meta = tail.meta;
    this.chunks = tail.chunks;
    this.filter = filter;
    this.idIndexLayout = tail.idIndex;
    this.blockCount = tail.footer.blocks.length;
    this.bloomBytes = tail.bloom.length;
    this.fileVerified = fileVerified;
  }

  /**
   * Verifies and opens a whole segment held in memory. With `expected` (from the manifest),
   * the size and whole-file CRC32C must match first. Throws SegmentCorruptError.
   */
  static fromBytes(bytes: Uint8Array, expected?: { sizeBytes: number; checksum: number }): SegmentReader {
    if (expected !== undefined) {
      if (bytes.length !== expected.sizeBytes)
        throw corrupt(`segment is ${bytes.length} bytes, manifest says ${expected.sizeBytes}`);
      const crc = crc32c(bytes);
      if (crc !== expected.checksum >>> 0)
        throw corrupt(`segment checksum ${crc} does not match manifest checksum ${expected.checksum}`);
    }
    for (let i = 0; i < SEGMENT_MAGIC.length; i++) {
      if (bytes[i] !== SEGMENT_MAGIC[i]) throw corrupt('segment header magic is not USEG');
    }
    const tail = parseTail(bytes.length, bytes, 0);
    if (expected === undefined) {
      for (const r of tail.idIndex?.regions ?? []) {
        if (crc32c(bytes.subarray(r.offset, r.offset + r.length)) !== r.crc)
          throw corrupt('segment id index chunk: checksum mismatch');
      }
    }
    const filter = parseBloom(
      bytes.subarray(tail.bloom.offset, tail.bloom.offset + tail.bloom.length),
      tail.bloom,
    );
    return new SegmentReader(bytes, tail, filter, expected !== undefined);
  }

  /**
   * A reader that holds no file bytes: `head` is the file's first bytes (magic), `tail` its end
   * from the footer on (readSegmentTail); `fetchChunk(i)` returns chunk i (column-major: column
   * c, block b is c · blocks + b) and must throw if it was not loaded. Point lookups use it,
   * so memory holds only the chunks they read. Each chunk's CRC is checked at every read.
   */
  static sparse(
    sizeBytes: number,
    head: Uint8Array,
    tail: { bytes: Uint8Array; start: number },
    fetchChunk: (chunkIndex: number) => Uint8Array,
  ): SegmentReader {
    for (let i = 0; i < SEGMENT_MAGIC.length; i++) {
      if (head[i] !== SEGMENT_MAGIC[i]) throw corrupt('segment header magic is not USEG');
    }
    return new SegmentReader(
      { sizeBytes, fetchChunk },
      parseTail(sizeBytes, tail.bytes, tail.start),
      null,
      false,
    );
  }

  /**
   * A sparse reader of the same file over other chunk bytes, sharing this reader's parsed
   * footer (immutable): a point image loaded again after eviction neither reads nor parses it.
   */
  withChunks(fetchChunk: (chunkIndex: number) => Uint8Array): SegmentReader {
    return new SegmentReader({ sizeBytes: this.sizeBytes, fetchChunk }, this.tail, null, false);
  }

  mayContainEventId(h1: number, h2: number): boolean {
    return this.filter === null || this.filter.mayContain(h1, h2);
  }

  /** Block indexes that may hold rows of `accountId` with timestamp in [fromMs, toMs). */
  selectBlocks(filter: { accountId?: string; fromMs?: number; toMs?: number }): number[] {
    const out: number[] = [];
    this.meta.blocks.forEach((b, i) => {
      if (
        filter.accountId !== undefined &&
        (filter.accountId < b.minAccountId || filter.accountId > b.maxAccountId)
      )
        return;
      if (filter.fromMs !== undefined && b.maxTimestampMs < filter.fromMs) return;
      if (filter.toMs !== undefined && b.minTimestampMs >= filter.toMs) return;
      out.push(i);
    });
    return out;
  }

  /**
   * Decodes `names` for the given blocks (strictly ascending; all blocks when omitted), rows
   * concatenated in block order. Every chunk's CRC is verified before it is decoded (at open
   * when the whole file's CRC was checked there).
   * Dict columns carry the segment dictionary (shared, read-only) and NULL_CODE for null.
   * `scratch`: typed columns are carved from it when large enough (overwritten by the next
   * call that passes it: for callers done with the columns by then).
   */
  readColumns(
    names: readonly ColumnName[],
    blockIndexes?: readonly number[],
    scratch?: ArrayBuffer,
  ): ColumnBatch {
    const blocks = blockIndexes ?? this.meta.blocks.map((_, i) => i);
    const rowCount = this.rowsOfBlocks(blocks, 'readColumns');
    const batch: ColumnBatch = { rowCount };
    // One buffer for every typed column of the call: a typed array allocation costs far more
    // than its bytes, and a query reads a few columns of one block at a time.
    let bytes = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (COLUMN_ID[name] === undefined) throw new RangeError(`readColumns: unknown column ${String(name)}`);
      bytes += TYPED_BYTES_PER_ROW[COLUMN_KIND[name]] * rowCount;
    }
    const slab = new Slab(bytes, scratch);
    // Widest element first keeps every view aligned; then the string columns (width 0).
    for (let w = 0; w < WIDTH_ORDER.length; w++)
      for (let i = 0; i < names.length; i++)
        if (TYPED_BYTES_PER_ROW[COLUMN_KIND[names[i]]] === WIDTH_ORDER[w])
          this.readColumn(batch, names[i], blocks, rowCount, slab);
    return batch;
  }

  /**
   * One row (`row` inside `block`) of `names`, as a one-row batch. Small-integer columns
   * (`kind`, dictionary codes) give just the row's value (decodeSmallIntAt); the others are
   * decoded whole into scratch reused by every call (synchronous, so never shared: a new
   * buffer per lookup cost more than the decoding), and only the row's values are copied out.
   */
  readRowAt(names: readonly ColumnName[], block: number, row: number): ColumnBatch {
    const count = this.rowsOfBlocks([block], 'readRowAt');
    if (!(Number.isInteger(row) && row >= 0 && row < count))
      throw new RangeError(`readRowAt: no row ${row} in block ${block} of ${count} rows`);
    let bytes = 0;
    const whole: ColumnName[] = [];
    for (const name of names) {
      if (COLUMN_ID[name] === undefined) throw new RangeError(`readRowAt: unknown column ${String(name)}`);
      const kind = COLUMN_KIND[name];
      if (kind === 'kind' || kind === 'dict') continue;
      whole.push(name);
      bytes += TYPED_BYTES_PER_ROW[kind] * count;
    }
    if (rowScratch.byteLength < bytes) rowScratch = new ArrayBuffer(bytes);
    const slab = new Slab(bytes, rowScratch);
    const full: ColumnBatch = { rowCount: count };
    for (let w = 0; w < WIDTH_ORDER.length; w++)
      for (const name of whole)
        if (TYPED_BYTES_PER_ROW[COLUMN_KIND[name]] === WIDTH_ORDER[w])
          this.readColumn(full, name, [block], count, slab);
    const out = rowOfBatch(full, whole, row);
    for (const name of names) {
      const kind = COLUMN_KIND[name];
      if (kind === 'kind')
        out.kind = Uint8Array.of(this.smallIntAt(name, block, count, row, KIND_LIMIT, false));
      else if (kind === 'dict') {
        const dictName = name as DictColumnName;
        const dict = this.footer.dicts[DICT_COLUMN_NAMES.indexOf(dictName)];
        const shift = dict.hasNull ? 1 : 0;
        // Stored codes are shifted by one when the column has nulls: 0 -> NULL_CODE.
        const code = this.smallIntAt(name, block, count, row, dict.values.length + shift, shift === 1);
        out[dictName] = { dict: dict.values, codes: Uint32Array.of(code) };
      }
    }
    return out;
  }

  /** Row `row` of a `kind` or dictionary chunk (see readColumn for the limits). */
  private smallIntAt(
    name: ColumnName,
    block: number,
    count: number,
    row: number,
    limit: number,
    nullShift: boolean,
  ): number {
    try {
      return decodeSmallIntAt(
        this.chunk(name, block),
        name === 'kind' ? 'kind' : 'dict',
        count,
        row,
        limit,
        nullShift,
      );
    } catch (err) {
      if (err instanceof SegmentCorruptError) throw err;
      throw corrupt(`segment chunk ${name} block ${block}`, err);
    }
  }

  /** Total rows of `blocks`, which must be valid and strictly ascending. */
  private rowsOfBlocks(blocks: readonly number[], caller: string): number {
    let rowCount = 0;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i];
      if (!(Number.isInteger(b) && b >= 0 && b < this.blockCount))
        throw new RangeError(`${caller}: no block ${b} (segment has ${this.blockCount})`);
      if (i > 0 && b <= blocks[i - 1])
        throw new RangeError(`${caller}: block indexes must be strictly ascending`);
      rowCount += this.footer.blocks[b].rowCount;
    }
    return rowCount;
  }

  /**
   * The event ids of `blocks` (strictly ascending) as UTF-8 bytes, rows in block order: for
   * the export, which copies bytes and would only turn JS strings back into them.
   */
  readEventIdBytes(blocks: readonly number[]): PackedIds {
    const rowCount = this.rowsOfBlocks(blocks, 'readEventIdBytes');
    const parts: PackedIds[] = [];
    let byteCount = 0;
    let block = -1;
    try {
      for (block of blocks) {
        const part = decodeEventIdBytes(this.chunk('event_id', block), this.footer.blocks[block].rowCount);
        parts.push(part);
        byteCount += part.bytes.length;
      }
    } catch (err) {
      if (err instanceof SegmentCorruptError) throw err;
      throw corrupt(`segment chunk event_id block ${block}`, err);
    }
    if (parts.length === 1) return parts[0];
    const bytes = new Uint8Array(byteCount);
    const ends = new Uint32Array(rowCount);
    let pos = 0;
    let row = 0;
    for (const part of parts) {
      bytes.set(part.bytes, pos);
      for (let i = 0; i < part.ends.length; i++) ends[row++] = pos + part.ends[i];
      pos += part.bytes.length;
    }
    return { bytes, ends };
  }

  /**
   * The event ids of the given rows (indexes inside `block`) of one block: for listings that
   * return a few rows of a block, without building a string for every row.
   */
  readEventIdsAt(block: number, rows: ArrayLike<number>): string[] {
    if (!(Number.isInteger(block) && block >= 0 && block < this.blockCount))
      throw new RangeError(`readEventIdsAt: no block ${block} (segment has ${this.blockCount})`);
    const bytes = this.chunk('event_id', block);
    try {
      return decodeEventIdsAt(bytes, this.footer.blocks[block].rowCount, rows);
    } catch (err) {
      if (err instanceof SegmentCorruptError || err instanceof RangeError) throw err;
      throw corrupt(`segment chunk event_id block ${block}`, err);
    }
  }

  /** The verified bytes of chunk (column, block). */
  private chunk(name: ColumnName, block: number): Uint8Array {
    const index = COLUMN_ID[name] * this.blockCount + block;
    const region = this.chunks[index];
    const bytes =
      this.bytes !== null
        ? this.bytes.subarray(region.offset, region.offset + region.length)
        : (this.fetchChunk as (chunkIndex: number) => Uint8Array)(index);
    if (bytes.length !== region.length) throw corrupt(`segment chunk ${name} block ${block}: wrong length`);
    if (!this.fileVerified && crc32c(bytes) !== region.crc)
      throw corrupt(`segment chunk ${name} block ${block}: checksum mismatch`);
    return bytes;
  }

  private readColumn(
    batch: ColumnBatch,
    name: ColumnName,
    blocks: readonly number[],
    rowCount: number,
    slab: Slab,
  ): void {
    const kind = COLUMN_KIND[name];
    let block = -1;
    try {
      switch (kind) {
        case 'event_id':
        case 'nullable_string': {
          let out: (string | null)[] = [];
          for (block of blocks) {
            const count = this.footer.blocks[block].rowCount;
            const part =
              kind === 'event_id'
                ? decodeEventIds(this.chunk(name, block), count)
                : decodeNullableStringChunk(this.chunk(name, block), count);
            // One block (the common projection) needs no copy.
            if (blocks.length === 1) out = part;
            else for (let i = 0; i < part.length; i++) out.push(part[i]);
          }
          if (name === 'event_id') batch.event_id = out as string[];
          else if (name === 'correction_original_event_id') batch.correction_original_event_id = out;
          else batch.correction_reason = out;
          return;
        }
        case 'kind': {
          const out = slab.u8(rowCount);
          let pos = 0;
          for (block of blocks) {
            const count = this.footer.blocks[block].rowCount;
            decodeSmallIntsInto(this.chunk(name, block), 'kind', out.subarray(pos, pos + count), KIND_LIMIT);
            pos += count;
          }
          batch.kind = out;
          return;
        }
        case 'dict': {
          const dictName = name as DictColumnName;
          const dict = this.footer.dicts[DICT_COLUMN_NAMES.indexOf(dictName)];
          const codes = slab.u32(rowCount);
          const shift = dict.hasNull ? 1 : 0;
          let pos = 0;
          for (block of blocks) {
            const count = this.footer.blocks[block].rowCount;
            // Stored codes are shifted by one when the column has nulls: 0 -> NULL_CODE.
            decodeSmallIntsInto(
              this.chunk(name, block),
              'dict',
              blocks.length === 1 ? codes : codes.subarray(pos, pos + count),
              dict.values.length + shift,
              shift === 1,
            );
            pos += count;
          }
          batch[dictName] = { dict: dict.values, codes };
          return;
        }
        case 'timestamp': {
          const out = slab.f64(rowCount);
          let pos = 0;
          for (block of blocks) {
            const count = this.footer.blocks[block].rowCount;
            decodeTimestampsInto(this.chunk(name, block), out.subarray(pos, pos + count));
            pos += count;
          }
          if (name === 'timestamp_ms') batch.timestamp_ms = out;
          else batch.ingested_at_ms = out;
          return;
        }
        case 'quantity': {
          const values = slab.f64(rowCount);
          const big = new Map<number, bigint>();
          let pos = 0;
          for (block of blocks) {
            const count = this.footer.blocks[block].rowCount;
            decodeQuantityChunkInto(this.chunk(name, block), values, pos, count, big);
            pos += count;
          }
          batch.quantity = { values, big: big.size > 0 ? big : null };
          return;
        }
      }
    } catch (err) {
      if (err instanceof SegmentCorruptError) throw err;
      throw corrupt(`segment chunk ${name} block ${block}`, err);
    }
  }

  /** Where each chunk lives in the file and its CRC (inspection, size reports, id hashing). */
  chunkLayout(): ChunkPlace[] {
    const out: ChunkPlace[] = [];
    COLUMN_NAMES.forEach((column, c) => {
      for (let block = 0; block < this.blockCount; block++) {
        const region = this.chunks[c * this.blockCount + block];
        out.push({ column, block, offset: region.offset, length: region.length, crc: region.crc });
      }
    });
    return out;
  }

  /** Stored bytes per column (all blocks) and of the other regions: for size reports. */
  sizeBreakdown(): Record<ColumnName | 'header' | 'bloom' | 'id_index' | 'footer' | 'trailer', number> {
    const idIndexBytes = (this.idIndexLayout?.regions ?? []).reduce((n, r) => n + r.length, 0);
    const out = {
      header: HEADER_BYTES,
      bloom: this.bloomBytes,
      id_index: idIndexBytes,
      trailer: TRAILER_BYTES,
      footer: 0,
    } as Record<ColumnName | 'header' | 'bloom' | 'id_index' | 'footer' | 'trailer', number>;
    let used = HEADER_BYTES + this.bloomBytes + idIndexBytes + TRAILER_BYTES;
    for (const name of COLUMN_NAMES) out[name] = 0;
    for (const chunk of this.chunkLayout()) {
      out[chunk.column] += chunk.length;
      used += chunk.length;
    }
    out.footer = this.sizeBytes - used;
    return out;
  }
}

/**
 * Reads only the tail of a segment file (trailer, footer) to get its metadata, where its
 * event-id filter lies and its id index layout, without reading column data or the filter.
 * Usually one read.
 */
export async function readSegmentFooter(
  file: ReadFile,
): Promise<{ meta: SegmentMeta; bloom: RegionRef; idIndex: IdIndexLayout | null }> {
  const { bytes: tail, start: tailStart } = await readSegmentTail(file);
  const parsed = parseTail(file.sizeBytes, tail, tailStart);
  return { meta: parsed.meta, bloom: parsed.bloom, idIndex: parsed.idIndex };
}

/** Reads and verifies a segment's event-id filter (its region from readSegmentFooter). */
export async function readSegmentFilter(file: ReadFile, region: RegionRef): Promise<BloomFilter> {
  return parseBloom(await file.read(region.offset, region.length), region);
}

/** Verifies one stored id index chunk (its CRC); the bytes are then searched as they are. */
export function verifyIdIndexChunk(bytes: Uint8Array, region: RegionRef): Uint8Array {
  if (bytes.length !== region.length || crc32c(bytes) !== region.crc)
    throw corrupt('segment id index chunk: checksum mismatch');
  return bytes;
}

/**
 * The end of a segment file from at least the start of its footer (SegmentReader.sparse's
 * `tail`). Usually one read.
 */
export async function readSegmentTail(file: ReadFile): Promise<{ bytes: Uint8Array; start: number }> {
  const size = file.sizeBytes;
  if (size < HEADER_BYTES + TRAILER_BYTES)
    throw corrupt(`segment ${file.path} is ${size} bytes, too short for header and trailer`);
  let tailStart = Math.max(0, size - FOOTER_TAIL_READ_BYTES);
  let tail = await readSmall(file, tailStart, size - tailStart);
  const footerLength = new DataView(tail.buffer, tail.byteOffset + tail.length - TRAILER_BYTES, 4).getUint32(
    0,
    true,
  );
  // The footer must be in hand before the filter's place is known; read more when it is not.
  const needFrom = size - TRAILER_BYTES - footerLength;
  if (needFrom < tailStart && needFrom >= HEADER_BYTES) {
    tailStart = needFrom;
    tail = await readSmall(file, tailStart, size - tailStart);
  }
  return { bytes: tail, start: tailStart };
}
