/**
 * Block summaries: one segment block's rows grouped by the dictionary columns (and kind) a
 * query filters and groups by, with each group's count and exact sum, min and max. A block
 * lies in one UTC day (it never spans two partitions), so a summary also answers a `day` key.
 *
 * A query repeated over many blocks (the top accounts of a month) reads each block's summary as
 * weighted rows (the path of rollup rows) instead of decoding and walking the block's rows:
 * grouped by (account, meter), a block of 4,096 sorted rows holds a few dozen groups. A summary
 * is built from the decoded block the first time an eligible query reads it, keyed by its
 * columns, and kept in the query cache (`ChunkCache`, bounded in bytes); never persisted.
 *
 * Invariants:
 * - counts, sums, mins and maxes are exact: float sums hold only safe integers and move to
 *   BigInt before they would leave the safe range; a value beyond 2^53 is kept as a bigint;
 * - the summary's dictionary columns share the block's segment dictionaries (codes unchanged),
 *   so a query keys them exactly as it keys the block's own rows;
 * - every row of the block is in exactly one group, and a group's rows agree on every
 *   summary column (so any filter or key over those columns treats them alike).
 */
import type {
  ColumnBatch,
  ColumnName,
  DictColumn,
  DictColumnName,
  QuantityColumn,
} from '../model/columns.ts';
import { compareQuantity, type Quantity, toQuantity } from '../model/quantity.ts';
import { assert } from '../errors.ts';
import { DAY_MS } from './time.ts';

/** What a summary groups by: dictionary columns (account_id always first) and maybe kind. */
export interface SummaryShape {
  dicts: readonly DictColumnName[];
  kind: boolean;
  /** Whether groups keep their min and max (else only count and sum). */
  minMax: boolean;
  /** Whether the query reads the rows' timestamps (a day key); summaries always carry them. */
  time: boolean;
  /** Cache key of the shape. */
  key: string;
  /** Columns a summary of this shape is built from. */
  columns: readonly ColumnName[];
}

export function summaryShape(
  dicts: readonly DictColumnName[],
  kind: boolean,
  minMax: boolean,
  time: boolean,
): SummaryShape {
  const all: DictColumnName[] = [
    'account_id',
    ...[...new Set(dicts)].filter((d) => d !== 'account_id').sort(),
  ];
  const columns: ColumnName[] = [...all, ...(kind ? (['kind'] as const) : []), 'quantity'];
  const key = `${all.join(',')}${kind ? ',kind' : ''}${minMax ? ',minmax' : ''}`;
  return { dicts: all, kind, minMax, time, key, columns };
}

export interface BlockSummary {
  /** Groups as rows: the dictionary columns, kind, timestamp_ms (the block's first) and sums as quantity. */
  batch: ColumnBatch;
  count: Float64Array;
  /** Absent unless the shape keeps them. */
  min: QuantityColumn | null;
  max: QuantityColumn | null;
  /** Memory held, for the cache's budget. */
  bytes: number;
}

/** Whether every row of a block lies in one UTC day (always, for blocks of partitioned files). */
export function oneDay(minTimestampMs: number, maxTimestampMs: number): boolean {
  return Math.floor(minTimestampMs / DAY_MS) === Math.floor(maxTimestampMs / DAY_MS);
}

const SAFE_MAX = Number.MAX_SAFE_INTEGER;

/**
 * Whether a summary built for shape `built` can stand for one of shape `wanted`: it groups by
 * every column the wanted one does (more columns only split groups further) and keeps what
 * the wanted one reads. A q1 summary (account, product, meter, model, unit) then serves the
 * same account's daily series by (meter, unit).
 */
export function shapeServes(built: SummaryShape, wanted: SummaryShape): boolean {
  if ((wanted.kind && !built.kind) || (wanted.minMax && !built.minMax)) return false;
  for (const d of wanted.dicts) if (!built.dicts.includes(d)) return false;
  return true;
}

const NO_KIND = new Uint8Array(0);

/** Scratch of summarize (used only inside one synchronous call). */
let keyScratch = new Float64Array(4096);
let groupScratch = new Int32Array(4096);
/** Open-addressing table of tuple numbers -> group + 1 (0 = empty); cleared after each use. */
let slotKeys = new Float64Array(8192);
let slotGroups = new Int32Array(8192);

function slotOf(k: number, mask: number): number {
  const lo = (k % 0x80000000) | 0;
  const hi = (k / 0x80000000) | 0;
  return (Math.imul(lo ^ Math.imul(hi, 0x27d4eb2f), 0x9e3779b1) >>> 15) & mask;
}

/**
 * Summarises a decoded block (the shape's columns and quantity). Each row's tuple becomes one
 * number (codes + 1 in mixed radix, when the space allows) in a tight pass per column; then
 * runs of equal numbers (sorted blocks have long runs) share one lookup.
 */
export function summarize(
  shape: SummaryShape,
  batch: ColumnBatch,
  rowCount: number,
  firstTimestampMs: number,
): BlockSummary {
  const names = shape.dicts;
  const cols: Uint32Array[] = names.map((name) => {
    const c = batch[name];
    assert(c !== undefined, `summary needs the ${name} column`);
    return c.codes;
  });
  const kind = shape.kind ? batch.kind : NO_KIND;
  const quantity = batch.quantity;
  assert(kind !== undefined && quantity !== undefined, 'summary needs kind and quantity');
  const withKind = shape.kind;
  const width = cols.length;
  if (keyScratch.length < rowCount) {
    keyScratch = new Float64Array(rowCount);
    groupScratch = new Int32Array(rowCount);
  }
  const gid = groupScratch;
  const firstRow: number[] = [];
  let space = withKind ? 3 : 1;
  for (const name of names) space *= (batch[name] as DictColumn).dict.length + 1;
  if (space <= 2 ** 53) {
    const keys = keyScratch;
    if (withKind) for (let row = 0; row < rowCount; row++) keys[row] = kind[row];
    else keys.fill(0, 0, rowCount);
    for (let c = 0; c < width; c++) {
      const codes = cols[c];
      const card = (batch[names[c]] as DictColumn).dict.length + 1;
      for (let row = 0; row < rowCount; row++) keys[row] = keys[row] * card + ((codes[row] + 1) >>> 0);
    }
    if (slotKeys.length < 2 * rowCount) {
      let size = slotKeys.length;
      while (size < 2 * rowCount) size *= 2;
      slotKeys = new Float64Array(size);
      slotGroups = new Int32Array(size);
    }
    const mask = slotKeys.length - 1;
    const usedSlots: number[] = [];
    let prev = -1;
    let g = -1;
    for (let row = 0; row < rowCount; row++) {
      const k = keys[row];
      if (k !== prev) {
        prev = k;
        let slot = slotOf(k, mask);
        while (slotGroups[slot] !== 0 && slotKeys[slot] !== k) slot = (slot + 1) & mask;
        if (slotGroups[slot] !== 0) g = slotGroups[slot] - 1;
        else {
          g = firstRow.length;
          slotKeys[slot] = k;
          slotGroups[slot] = g + 1;
          firstRow.push(row);
          usedSlots.push(slot);
        }
      }
      gid[row] = g;
    }
    // Empty the table again: only the slots of this block's groups were set.
    for (let i = 0; i < usedSlots.length; i++) slotGroups[usedSlots[i]] = 0;
  } else {
    // Beyond one number: the tuple as text, looked up once per run.
    const groupOf = new Map<string, number>();
    let g = -1;
    for (let row = 0; row < rowCount; row++) {
      let same = g >= 0 && (!withKind || kind[row] === kind[row - 1]);
      for (let c = 0; same && c < width; c++) same = cols[c][row] === cols[c][row - 1];
      if (!same) {
        let key = withKind ? String(kind[row]) : '';
        for (let c = 0; c < width; c++) key += ',' + cols[c][row];
        const known = groupOf.get(key);
        if (known !== undefined) g = known;
        else {
          g = firstRow.length;
          groupOf.set(key, g);
          firstRow.push(row);
        }
      }
      gid[row] = g;
    }
  }
  const n = firstRow.length;
  const cnt = new Float64Array(n);
  const sum = new Float64Array(n);
  const min = new Float64Array(shape.minMax ? n : 0).fill(Number.POSITIVE_INFINITY);
  const max = new Float64Array(shape.minMax ? n : 0).fill(Number.NEGATIVE_INFINITY);
  const values = quantity.values;
  let slow = false;
  for (let row = 0; row < rowCount; row++) {
    const g = gid[row];
    const t = sum[g] + values[row];
    // NaN (a quantity beyond 2^53) fails both comparisons too.
    if (t <= SAFE_MAX && t >= -SAFE_MAX) {
      sum[g] = t;
      cnt[g]++;
    } else {
      gid[row] = ~g;
      slow = true;
    }
  }
  if (shape.minMax)
    for (let row = 0; row < rowCount; row++) {
      const g = gid[row];
      if (g < 0) continue;
      const v = values[row];
      if (v < min[g]) min[g] = v;
      if (v > max[g]) max[g] = v;
    }
  let big: Map<number, bigint> | null = null;
  let minBig: Map<number, bigint> | null = null;
  let maxBig: Map<number, bigint> | null = null;
  if (slow)
    for (let row = 0; row < rowCount; row++) {
      if (gid[row] >= 0) continue;
      const g = ~gid[row];
      cnt[g]++;
      const v = values[row];
      big ??= new Map();
      if (!Number.isNaN(v)) {
        // The float sum would leave the safe range: move it and this row to the BigInt part.
        big.set(g, (big.get(g) ?? 0n) + BigInt(sum[g]) + BigInt(v));
        sum[g] = 0;
        if (shape.minMax) {
          if (v < min[g]) min[g] = v;
          if (v > max[g]) max[g] = v;
        }
        continue;
      }
      const q = quantity.big?.get(row);
      assert(q !== undefined, `quantity row ${row} is NaN without a big value`);
      big.set(g, (big.get(g) ?? 0n) + q);
      if (!shape.minMax) continue;
      minBig ??= new Map();
      maxBig ??= new Map();
      const lo = minBig.get(g);
      const hi = maxBig.get(g);
      if (lo === undefined || q < lo) minBig.set(g, q);
      if (hi === undefined || q > hi) maxBig.set(g, q);
    }
  const out: ColumnBatch = { rowCount: n };
  for (let c = 0; c < width; c++) {
    const name = names[c];
    const codes = new Uint32Array(n);
    for (let k = 0; k < n; k++) codes[k] = cols[c][firstRow[k]];
    out[name] = { dict: (batch[name] as DictColumn).dict, codes };
  }
  if (withKind) {
    const kinds = new Uint8Array(n);
    for (let k = 0; k < n; k++) kinds[k] = kind[firstRow[k]];
    out.kind = kinds;
  }
  out.timestamp_ms = new Float64Array(n).fill(firstTimestampMs);
  out.quantity = finishSums(sum, big);
  const minCol = shape.minMax ? finishExtreme(min, minBig, -1) : null;
  const maxCol = shape.minMax ? finishExtreme(max, maxBig, 1) : null;
  const bigCount = (out.quantity.big?.size ?? 0) + (minCol?.big?.size ?? 0) + (maxCol?.big?.size ?? 0);
  const perGroup = width * 4 + (shape.kind ? 1 : 0) + 8 + (shape.minMax ? 32 : 16);
  return {
    batch: out,
    count: cnt,
    min: minCol,
    max: maxCol,
    // Typed arrays per group, plus the objects around them and any big values.
    bytes: n * perGroup + 128 * (width + 6) + bigCount * 64,
  };
}

/** Final sums: a float part plus the BigInt part of groups that left the safe range. */
function finishSums(sum: Float64Array, big: Map<number, bigint> | null): QuantityColumn {
  if (big === null) return { values: sum, big: null };
  const exact = new Map<number, bigint>();
  for (const [g, b] of big) {
    const total: Quantity = toQuantity(b + BigInt(sum[g]));
    if (typeof total === 'number') sum[g] = total;
    else {
      sum[g] = Number.NaN;
      exact.set(g, total);
    }
  }
  return { values: sum, big: exact.size > 0 ? exact : null };
}

/** Final min (sign -1) or max (sign 1): the float extreme, or a bigint one beyond it. */
function finishExtreme(floats: Float64Array, big: Map<number, bigint> | null, sign: number): QuantityColumn {
  if (big === null) return { values: floats, big: null };
  const exact = new Map<number, bigint>();
  for (const [g, b] of big) {
    const f = floats[g];
    // No float value in the group (only big ones), or the big one is more extreme.
    if (!Number.isFinite(f) || compareQuantity(b, f) * sign > 0) {
      floats[g] = Number.NaN;
      exact.set(g, b);
    }
  }
  return { values: floats, big: exact.size > 0 ? exact : null };
}

/**
 * Joins summaries of blocks that share their dictionaries (blocks of one segment file) into
 * one, so a query visits a file's summaries in one step instead of one per block. Groups stay
 * as they are (a tuple may appear once per block): the query adds them up.
 */
export function concatSummaries(shape: SummaryShape, parts: readonly BlockSummary[]): BlockSummary {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.batch.rowCount;
  const first = parts[0].batch;
  const out: ColumnBatch = { rowCount: n };
  for (const name of shape.dicts) {
    const codes = new Uint32Array(n);
    let at = 0;
    for (const p of parts) {
      const col = p.batch[name] as DictColumn;
      assert(col.dict === (first[name] as DictColumn).dict, 'joined summaries must share dictionaries');
      codes.set(col.codes, at);
      at += col.codes.length;
    }
    out[name] = { dict: (first[name] as DictColumn).dict, codes };
  }
  if (shape.kind) out.kind = joinArrays(parts, (p) => p.batch.kind as Uint8Array, new Uint8Array(n));
  if (shape.time)
    out.timestamp_ms = joinArrays(parts, (p) => p.batch.timestamp_ms as Float64Array, new Float64Array(n));
  const quantity = joinQuantities(parts, (p) => p.batch.quantity as QuantityColumn, n);
  out.quantity = quantity;
  const count = joinArrays(parts, (p) => p.count, new Float64Array(n));
  const min = shape.minMax ? joinQuantities(parts, (p) => p.min as QuantityColumn, n) : null;
  const max = shape.minMax ? joinQuantities(parts, (p) => p.max as QuantityColumn, n) : null;
  return { batch: out, count, min, max, bytes: 0 };
}

function joinArrays<T extends Uint8Array | Float64Array>(
  parts: readonly BlockSummary[],
  of: (p: BlockSummary) => T,
  out: T,
): T {
  let at = 0;
  for (const p of parts) {
    const a = of(p);
    out.set(a as never, at);
    at += a.length;
  }
  return out;
}

function joinQuantities(
  parts: readonly BlockSummary[],
  of: (p: BlockSummary) => QuantityColumn,
  n: number,
): QuantityColumn {
  const values = new Float64Array(n);
  let big: Map<number, bigint> | null = null;
  let at = 0;
  for (const p of parts) {
    const q = of(p);
    values.set(q.values, at);
    if (q.big !== null) {
      big ??= new Map();
      for (const [row, v] of q.big) big.set(at + row, v);
    }
    at += q.values.length;
  }
  return { values, big };
}
