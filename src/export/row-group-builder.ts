/**
 * Builds one Parquet row group at a time: rows of stored columns (ExportColumns) are appended
 * into reusable Arrow buffers and serialised as one Arrow IPC stream (the form parquet-wasm
 * takes).
 *
 * Invariants:
 * - at most `capacityRows` rows are buffered; `takeIpc()` empties the builder, so memory stays
 *   bounded by one row group whatever the export size;
 * - `rowsAppended` and `quantitySum` count exactly the rows handed to Arrow — what was read
 *   from the database — and are later compared with what the Parquet file holds;
 * - a quantity is written as the two's complement i128 of its exact value (Decimal128(38,0)).
 */
import { Buffer } from 'node:buffer';
import { type Data, type DataType, RecordBatch, Struct, Table, makeData, tableToIPC } from 'apache-arrow';
import { UsageDbError, assert } from '../errors.ts';
import { type DictColumn, KIND_NAMES, NULL_CODE } from '../model/columns.ts';
import type { PackedIds } from '../model/packed-ids.ts';
import { ExactSum, QUANTITY_ABS_MAX } from '../model/quantity.ts';
import type { ExportColumns } from './plan.ts';
import { EXPORT_COLUMNS, EXPORT_SCHEMA } from './schema.ts';

const TWO_POW_32 = 4294967296;
const UTF8_BYTES_PER_UNIT_MAX = 3;

/** UTF-8 of every entry of one dictionary, in one exact-size buffer: entry i is bytes[starts[i], starts[i+1]). */
interface EncodedDict {
  bytes: Buffer;
  starts: Uint32Array;
  entries: number;
  /** Entry i as a view, made once: copying a long entry is then one native call. */
  views: Uint8Array[];
}

/**
 * Encoded dictionaries, by dictionary identity (a segment's dictionary is shared by its
 * blocks). One unpooled buffer each: small pooled Buffers would pin an 8 KiB slab per entry.
 */
const encodedDicts = new WeakMap<readonly string[], EncodedDict>();

function encodeDict(dict: readonly string[]): EncodedDict {
  const starts = new Uint32Array(dict.length + 1);
  for (let i = 0; i < dict.length; i++) starts[i + 1] = starts[i] + Buffer.byteLength(dict[i], 'utf8');
  const bytes = Buffer.allocUnsafeSlow(starts[dict.length]);
  for (let i = 0; i < dict.length; i++) bytes.write(dict[i], starts[i], 'utf8');
  const views = Array.from({ length: dict.length }, (_, i) => bytes.subarray(starts[i], starts[i + 1]));
  return { bytes, starts, entries: dict.length, views };
}

function encodedDict(dict: readonly string[]): EncodedDict {
  let out = encodedDicts.get(dict);
  // A memtable dictionary is live and only grows (memtable invariant): re-encode when it grew.
  if (out === undefined || out.entries < dict.length) {
    out = encodeDict(dict);
    encodedDicts.set(dict, out);
  }
  return out;
}

const KIND_DICT = encodeDict(KIND_NAMES);

function isPackedIds(ids: readonly string[] | PackedIds): ids is PackedIds {
  return !Array.isArray(ids);
}

/** A Utf8 column under construction: offsets, bytes and (if nullable) a validity bitmap. */
class Utf8Builder {
  private readonly nullable: boolean;
  private readonly offsets: Int32Array;
  private bytes: Buffer;
  private readonly validity: Uint8Array;
  private length = 0;
  private nulls = 0;

  constructor(capacityRows: number, nullable: boolean) {
    this.nullable = nullable;
    this.offsets = new Int32Array(capacityRows + 1);
    // Start small: mostly-null columns stay small, busy ones grow once and keep their size.
    this.bytes = Buffer.allocUnsafeSlow(Math.max(1024, capacityRows * 4));
    this.validity = new Uint8Array(nullable ? Math.ceil(capacityRows / 8) : 0);
  }

  private ensure(extraBytes: number): void {
    const used = this.offsets[this.length];
    if (used + extraBytes > this.bytes.length) this.grow(used, used + extraBytes);
  }

  /** A bigger byte buffer holding the first `used` bytes; returns it. */
  private grow(used: number, need: number): Buffer {
    // Offsets are int32: one row group's strings stay under 2 GiB by construction (row limit).
    assert(need < 2 ** 31, 'a row group holds more than 2 GiB of one string column');
    const next = Buffer.allocUnsafeSlow(Math.min(2 ** 31 - 1, Math.max(need, this.bytes.length * 2)));
    this.bytes.copy(next, 0, 0, used);
    this.bytes = next;
    return next;
  }

  private nullRows(count: number): void {
    if (!this.nullable)
      throw new UsageDbError('USAGEDB_ERR_INTERNAL', 'invariant violated: null in a required column');
    this.nulls += count;
  }

  private setValid(from: number, to: number): void {
    if (!this.nullable) return;
    const validity = this.validity;
    for (let r = from; r < to; r++) validity[r >> 3] |= 1 << (r & 7);
  }

  /**
   * Appends `values[rows[i]]` (null allowed only in a nullable column). The values are joined
   * and written with one native call: when the text is ASCII (ids almost always are), its
   * latin1 bytes are its UTF-8 bytes and each value's byte length is its length.
   */
  appendStrings(values: readonly (string | null)[], rows: ArrayLike<number>): void {
    const n = rows.length;
    const parts = new Array<string>(n);
    let present = 0;
    let units = 0;
    for (let i = 0; i < n; i++) {
      const value = values[rows[i]];
      if (value === null) continue;
      parts[present++] = value;
      units += value.length;
    }
    if (present === 0 && n > 0) {
      // All null (the correction columns of Usage rows, almost always): no bytes to write.
      this.nullRows(n);
      const end = this.length + n;
      this.offsets.fill(this.offsets[this.length], this.length + 1, end + 1);
      this.length = end;
      return;
    }
    parts.length = present;
    const joined = parts.join('');
    if (Buffer.byteLength(joined, 'utf8') !== units) {
      this.appendStringsUtf8(values, rows);
      return;
    }
    this.ensure(units);
    const offsets = this.offsets;
    let length = this.length;
    let pos = offsets[length];
    this.bytes.write(joined, pos, 'latin1');
    for (let i = 0; i < n; i++) {
      const value = values[rows[i]];
      if (value === null) this.nullRows(1);
      else {
        pos += value.length;
        if (this.nullable) this.setValid(length, length + 1);
      }
      offsets[++length] = pos;
    }
    this.length = length;
  }

  /**
   * Appends values `rows[i]` of packed UTF-8 values (no nulls). Rows are mostly consecutive
   * (every row of a block matches an unfiltered export): a run of them is one native copy.
   */
  appendPacked(values: PackedIds, rows: ArrayLike<number>): void {
    const ends = values.ends;
    const source = values.bytes;
    const n = rows.length;
    let byteCount = 0;
    for (let i = 0; i < n; i++) {
      const row = rows[i];
      byteCount += ends[row] - (row === 0 ? 0 : ends[row - 1]);
    }
    this.ensure(byteCount);
    const offsets = this.offsets;
    const first = this.length;
    let length = first;
    let pos = offsets[length];
    let i = 0;
    while (i < n) {
      const runFirst = rows[i];
      let runLast = runFirst;
      while (++i < n && rows[i] === runLast + 1) runLast++;
      const start = runFirst === 0 ? 0 : ends[runFirst - 1];
      this.bytes.set(source.subarray(start, ends[runLast]), pos);
      for (let row = runFirst; row <= runLast; row++) offsets[++length] = pos + ends[row] - start;
      pos += ends[runLast] - start;
    }
    this.setValid(first, length);
    this.length = length;
  }

  /** appendStrings for text that is not all ASCII: each value encoded on its own. */
  private appendStringsUtf8(values: readonly (string | null)[], rows: ArrayLike<number>): void {
    let units = 0;
    for (let i = 0; i < rows.length; i++) units += values[rows[i]]?.length ?? 0;
    this.ensure(units * UTF8_BYTES_PER_UNIT_MAX);
    const bytes = this.bytes;
    const offsets = this.offsets;
    let length = this.length;
    let pos = offsets[length];
    for (let i = 0; i < rows.length; i++) {
      const value = values[rows[i]];
      if (value === null) this.nullRows(1);
      else {
        pos += bytes.write(value, pos, 'utf8');
        if (this.nullable) this.setValid(length, length + 1);
      }
      offsets[++length] = pos;
    }
    this.length = length;
  }

  /**
   * Appends entry `codes[rows[i]]` of an encoded dictionary (NULL_CODE is a null), in one
   * pass. Rows come in the segment's sort order, so equal codes come in runs (e.g. ~30 rows per
   * account): a run is copied once, then doubled with native copies, not byte by byte per row.
   */
  appendCodes(dict: EncodedDict, codes: ArrayLike<number>, rows: ArrayLike<number>): void {
    const starts = dict.starts;
    const source = dict.bytes;
    const views = dict.views;
    const offsets = this.offsets;
    const n = rows.length;
    let target = this.bytes;
    let length = this.length;
    let pos = offsets[length];
    let i = 0;
    while (i < n) {
      const code = codes[rows[i]];
      let end = i + 1;
      while (end < n && codes[rows[end]] === code) end++;
      const run = end - i;
      i = end;
      if (code === NULL_CODE) {
        this.nullRows(run);
        for (let r = 0; r < run; r++) offsets[++length] = pos;
        continue;
      }
      const from = starts[code];
      const size = starts[code + 1] - from;
      const runBytes = size * run;
      if (pos + runBytes > target.length) target = this.grow(pos, pos + runBytes);
      // Short copies: a plain loop beats a native call (measured: up to ~16 bytes).
      if (size <= 16) for (let k = 0; k < size; k++) target[pos + k] = source[from + k];
      else target.set(views[code], pos);
      if (runBytes <= 64) {
        for (let k = size; k < runBytes; k++) target[pos + k] = target[pos + k - size];
      } else {
        for (let done = size; done < runBytes; done *= 2)
          target.copyWithin(pos + done, pos, pos + Math.min(done, runBytes - done));
      }
      if (this.nullable) this.setValid(length, length + run);
      for (let r = 0; r < run; r++) offsets[++length] = pos += size;
    }
    this.length = length;
  }

  /** Arrow data over the builder's buffers: valid until the next `reset()`. */
  data(type: DataType): Data {
    const end = this.offsets[this.length];
    return makeData({
      type,
      length: this.length,
      nullCount: this.nulls,
      nullBitmap: this.nulls > 0 ? this.validity.subarray(0, Math.ceil(this.length / 8)) : undefined,
      valueOffsets: this.offsets.subarray(0, this.length + 1),
      data: new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, end),
    } as Parameters<typeof makeData>[0]);
  }

  reset(): void {
    this.length = 0;
    this.nulls = 0;
    this.offsets[0] = 0;
    this.validity.fill(0);
  }
}

/** Fixed-width little-endian words (int64 = 2 words, i128 = 4 words) under construction. */
class WordBuilder {
  private readonly wordsPerValue: number;
  readonly words: Uint32Array;
  length = 0;

  constructor(capacityRows: number, wordsPerValue: number) {
    this.wordsPerValue = wordsPerValue;
    this.words = new Uint32Array(capacityRows * wordsPerValue);
  }

  /** Appends `values[rows[i]]`, each a non-negative safe integer, as int64 (timestamps). */
  appendInt64s(values: Float64Array, rows: ArrayLike<number>): void {
    const words = this.words;
    let at = this.length * 2;
    for (let i = 0; i < rows.length; i++) {
      const value = values[rows[i]];
      if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Math.floor(value) === value)) {
        throw new UsageDbError(
          'USAGEDB_ERR_INTERNAL',
          `invariant violated: int64 column value ${value} is not a non-negative safe integer`,
        );
      }
      const lo = value >>> 0;
      words[at++] = lo;
      words[at++] = (value - lo) / TWO_POW_32;
    }
    this.length += rows.length;
  }

  /** Appends a safe integer as the two's complement i128. */
  appendDecimalNumber(value: number): void {
    const words = this.words;
    const at = this.length * 4;
    const magnitude = value < 0 ? -value : value;
    const lo = magnitude >>> 0;
    const hi = (magnitude - lo) / TWO_POW_32;
    if (value < 0) {
      // Two's complement: invert every word and add one (the carry stops at word 1 since magnitude > 0).
      words[at] = (~lo + 1) >>> 0;
      words[at + 1] = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
      words[at + 2] = 0xffffffff;
      words[at + 3] = 0xffffffff;
    } else {
      words[at] = lo;
      words[at + 1] = hi;
      words[at + 2] = 0;
      words[at + 3] = 0;
    }
    this.length++;
  }

  appendDecimalBig(value: bigint): void {
    assert(value <= QUANTITY_ABS_MAX && value >= -QUANTITY_ABS_MAX, 'quantity outside ±(10^38 − 1)');
    const at = this.length * 4;
    let u = BigInt.asUintN(128, value);
    for (let w = 0; w < 4; w++) {
      this.words[at + w] = Number(u & 0xffffffffn);
      u >>= 32n;
    }
    this.length++;
  }

  /** Arrow data over the builder's words: valid until the next `reset()`. */
  data(type: DataType): Data {
    const view =
      this.wordsPerValue === 2
        ? new BigInt64Array(this.words.buffer, this.words.byteOffset, this.length)
        : this.words.subarray(0, this.length * this.wordsPerValue);
    return makeData({ type, length: this.length, nullCount: 0, data: view } as Parameters<
      typeof makeData
    >[0]);
  }

  reset(): void {
    this.length = 0;
  }
}

export class RowGroupBuilder {
  readonly capacityRows: number;
  private readonly strings = new Map<string, Utf8Builder>();
  private readonly timestamp: WordBuilder;
  private readonly ingestedAt: WordBuilder;
  private readonly quantity: WordBuilder;
  private buffered = 0;
  /** Rows and exact quantity sum appended since the last `takeTotals()` (read from the database). */
  private rowsAppended = 0;
  private quantitySum = new ExactSum();

  constructor(capacityRows: number) {
    assert(
      Number.isInteger(capacityRows) && capacityRows > 0,
      'row group capacity must be a positive integer',
    );
    this.capacityRows = capacityRows;
    for (const c of EXPORT_COLUMNS)
      if (c.kind === 'string') this.strings.set(c.name, new Utf8Builder(capacityRows, c.nullable));
    this.timestamp = new WordBuilder(capacityRows, 2);
    this.ingestedAt = new WordBuilder(capacityRows, 2);
    this.quantity = new WordBuilder(capacityRows, 4);
  }

  /** What was appended since the last call: the database side of the export check. */
  takeTotals(): { rows: number; quantitySum: bigint } {
    const totals = { rows: this.rowsAppended, quantitySum: BigInt(this.quantitySum.value()) };
    this.rowsAppended = 0;
    this.quantitySum = new ExactSum();
    return totals;
  }

  get bufferedRows(): number {
    return this.buffered;
  }

  get spaceRows(): number {
    return this.capacityRows - this.buffered;
  }

  private str(name: string): Utf8Builder {
    const b = this.strings.get(name);
    assert(b !== undefined, `no string column ${name}`);
    return b;
  }

  /** Appends `rows` (indexes into `c`, at most `spaceRows` of them) in order, column by column. */
  append(c: ExportColumns, rows: ArrayLike<number>): void {
    assert(rows.length <= this.spaceRows, 'append past the row group capacity');
    const ids = c.event_id;
    if (isPackedIds(ids)) this.str('event_id').appendPacked(ids, rows);
    else this.str('event_id').appendStrings(ids, rows);
    this.str('kind').appendCodes(KIND_DICT, c.kind, rows);
    this.str('correction_original_event_id').appendStrings(c.correction_original_event_id, rows);
    this.str('correction_reason').appendStrings(c.correction_reason, rows);
    this.appendDict('account_id', c.account_id, rows);
    this.appendDict('subscription_id', c.subscription_id, rows);
    this.appendDict('product_id', c.product_id, rows);
    this.appendDict('meter_id', c.meter_id, rows);
    this.appendDict('model_id', c.model_id, rows);
    this.timestamp.appendInt64s(c.timestamp_ms, rows);
    this.appendQuantities(c, rows);
    this.appendDict('unit', c.unit, rows);
    this.appendDict('source', c.source, rows);
    this.appendDict('dimensions_canonical', c.dimensions, rows);
    this.ingestedAt.appendInt64s(c.ingested_at_ms, rows);
    this.buffered += rows.length;
    this.rowsAppended += rows.length;
  }

  private appendQuantities(c: ExportColumns, rows: ArrayLike<number>): void {
    const values = c.quantity.values;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const v = values[row];
      if (Number.isSafeInteger(v)) {
        this.quantity.appendDecimalNumber(v);
        this.quantitySum.add(v);
        continue;
      }
      const big = c.quantity.big?.get(row);
      if (!Number.isNaN(v) || big === undefined) {
        throw new UsageDbError(
          'USAGEDB_ERR_INTERNAL',
          `invariant violated: quantity of row ${row} is neither a safe integer nor exact`,
        );
      }
      this.quantity.appendDecimalBig(big);
      this.quantitySum.add(big);
    }
  }

  private appendDict(name: string, col: DictColumn, rows: ArrayLike<number>): void {
    this.str(name).appendCodes(encodedDict(col.dict), col.codes, rows);
  }

  /** Serialises the buffered rows as an Arrow IPC stream of one RecordBatch and empties the builder. */
  takeIpc(): Uint8Array {
    const children = EXPORT_SCHEMA.fields.map((field) => {
      if (field.name === 'timestamp_ms') return this.timestamp.data(field.type);
      if (field.name === 'ingested_at_ms') return this.ingestedAt.data(field.type);
      if (field.name === 'quantity') return this.quantity.data(field.type);
      return this.str(field.name).data(field.type);
    });
    for (const child of children) assert(child.length === this.buffered, 'export columns differ in length');
    const struct = makeData({
      type: new Struct(EXPORT_SCHEMA.fields),
      length: this.buffered,
      nullCount: 0,
      children,
    });
    const ipc = tableToIPC(new Table([new RecordBatch(EXPORT_SCHEMA, struct)]), 'stream');
    this.buffered = 0;
    for (const b of this.strings.values()) b.reset();
    this.timestamp.reset();
    this.ingestedAt.reset();
    this.quantity.reset();
    return ipc;
  }
}
