/**
 * The in-memory columnar form of events, shared by the memtable, the segment reader, the
 * query engine and the Parquet export. One row = one stored event.
 *
 * Invariants:
 * - every present column has exactly `rowCount` entries;
 * - `quantity.values[i]` is the exact quantity when it is a safe integer; otherwise it is NaN
 *   and `quantity.big.get(i)` holds the exact value (|q| <= 10^38 - 1);
 * - dictionary codes index `dict`; `NULL_CODE` marks a null in a nullable column;
 * - `dimensions` dictionary entries are canonical JSON of the key-sorted map ('{}' when empty).
 */

export const NULL_CODE = 0xffffffff;

/** Persisted codes for `kind` — never renumber. */
export const KIND_USAGE = 0;
export const KIND_CORRECTION = 1;
export const KIND_RETRACTION = 2;
export const KIND_NAMES = ['Usage', 'Correction', 'Retraction'] as const;
export type EventKind = (typeof KIND_NAMES)[number];

export interface DictColumn {
  dict: string[];
  codes: Uint32Array;
}

export interface QuantityColumn {
  values: Float64Array;
  /** Row index -> exact value, for rows whose quantity is not a safe integer; null when none. */
  big: Map<number, bigint> | null;
}

export interface EventColumns {
  rowCount: number;
  event_id: string[];
  kind: Uint8Array;
  correction_original_event_id: (string | null)[];
  correction_reason: (string | null)[];
  account_id: DictColumn;
  subscription_id: DictColumn;
  product_id: DictColumn;
  meter_id: DictColumn;
  model_id: DictColumn;
  unit: DictColumn;
  source: DictColumn;
  dimensions: DictColumn;
  timestamp_ms: Float64Array;
  quantity: QuantityColumn;
  ingested_at_ms: Float64Array;
}

export type ColumnName = Exclude<keyof EventColumns, 'rowCount'>;

/** Every column, in the persisted order of the segment format — never reorder. */
export const COLUMN_NAMES: readonly ColumnName[] = [
  'event_id',
  'kind',
  'correction_original_event_id',
  'correction_reason',
  'account_id',
  'subscription_id',
  'product_id',
  'meter_id',
  'model_id',
  'unit',
  'source',
  'dimensions',
  'timestamp_ms',
  'quantity',
  'ingested_at_ms',
];

export const DICT_COLUMN_NAMES = [
  'account_id',
  'subscription_id',
  'product_id',
  'meter_id',
  'model_id',
  'unit',
  'source',
  'dimensions',
] as const satisfies readonly ColumnName[];
export type DictColumnName = (typeof DICT_COLUMN_NAMES)[number];

/** A projection: `rowCount` plus the columns that were asked for. */
export type ColumnBatch = { rowCount: number } & Partial<Omit<EventColumns, 'rowCount'>>;

/** Reads a dictionary value (null for NULL_CODE). */
export function dictValue(col: DictColumn, row: number): string | null {
  const code = col.codes[row];
  return code === NULL_CODE ? null : col.dict[code];
}

/** Exact quantity of a row: a number when safe, else a bigint. */
export function quantityAt(col: QuantityColumn, row: number): number | bigint {
  const v = col.values[row];
  if (!Number.isNaN(v)) return v;
  const big = col.big?.get(row);
  if (big === undefined) throw new Error(`quantity column: row ${row} is NaN with no big value`);
  return big;
}

/** Exact quantity of a row as a bigint. */
export function quantityBigAt(col: QuantityColumn, row: number): bigint {
  const q = quantityAt(col, row);
  return typeof q === 'bigint' ? q : BigInt(q);
}

/** Rows of one column set to copy, in order. */
export interface RowSelection {
  columns: EventColumns;
  rows: ArrayLike<number>;
}

/** One dictionary column over several selections: values found by string, codes compact. */
function concatDict(parts: readonly RowSelection[], name: DictColumnName, n: number): DictColumn {
  const codeOf = new Map<string, number>();
  const dict: string[] = [];
  const codes = new Uint32Array(n);
  let i = 0;
  for (const { columns, rows } of parts) {
    const col = columns[name];
    // Per part, code -> new code + 1 (0: not seen yet): each distinct value is looked up by
    // string once.
    const remap = new Uint32Array(col.dict.length);
    for (let k = 0; k < rows.length; k++, i++) {
      const code = col.codes[rows[k]];
      if (code === NULL_CODE) {
        codes[i] = NULL_CODE;
        continue;
      }
      let next = remap[code] - 1;
      if (next < 0) {
        const value = col.dict[code];
        next = codeOf.get(value) ?? -1;
        if (next < 0) {
          next = dict.length;
          dict.push(value);
          codeOf.set(value, next);
        }
        remap[code] = next + 1;
      }
      codes[i] = next;
    }
  }
  return { dict, codes };
}

/** Copies the given rows (in the given order) into new columns with compact dictionaries. */
export function selectRows(c: EventColumns, rows: ArrayLike<number>): EventColumns {
  return concatRows([{ columns: c, rows }]);
}

/**
 * Copies the selected rows of several column sets (in order) into new columns with compact
 * dictionaries: no object per row (compaction merges millions of rows this way).
 */
export function concatRows(parts: readonly RowSelection[]): EventColumns {
  const n = parts.reduce((sum, p) => sum + p.rows.length, 0);
  const eventId = new Array<string>(n);
  const kind = new Uint8Array(n);
  const originalId = new Array<string | null>(n);
  const reason = new Array<string | null>(n);
  const timestamp = new Float64Array(n);
  const values = new Float64Array(n);
  const ingestedAt = new Float64Array(n);
  let big: Map<number, bigint> | null = null;
  let i = 0;
  for (const { columns: c, rows } of parts) {
    for (let k = 0; k < rows.length; k++, i++) {
      const r = rows[k];
      eventId[i] = c.event_id[r];
      kind[i] = c.kind[r];
      originalId[i] = c.correction_original_event_id[r];
      reason[i] = c.correction_reason[r];
      timestamp[i] = c.timestamp_ms[r];
      values[i] = c.quantity.values[r];
      if (Number.isNaN(values[i])) {
        big ??= new Map();
        big.set(i, c.quantity.big?.get(r) as bigint);
      }
      ingestedAt[i] = c.ingested_at_ms[r];
    }
  }
  const dicts = {} as Record<DictColumnName, DictColumn>;
  for (const name of DICT_COLUMN_NAMES) dicts[name] = concatDict(parts, name, n);
  return {
    rowCount: n,
    event_id: eventId,
    kind,
    correction_original_event_id: originalId,
    correction_reason: reason,
    ...dicts,
    timestamp_ms: timestamp,
    quantity: { values, big },
    ingested_at_ms: ingestedAt,
  };
}

/** Rank of each dictionary code in sorted value order (NULL_CODE ranks first). */
export function dictRanks(col: DictColumn): (code: number) => number {
  const order = col.dict
    .map((_, i) => i)
    .sort((a, b) => (col.dict[a] < col.dict[b] ? -1 : col.dict[a] > col.dict[b] ? 1 : 0));
  const rank = new Uint32Array(col.dict.length);
  for (let i = 0; i < order.length; i++) rank[order[i]] = i + 1;
  return (code) => (code === NULL_CODE ? 0 : rank[code]);
}

/**
 * Row indexes sorted by `partitionOf(row)` (a number: the (day, bucket) partition), then the
 * segment order (account_id, product_id, meter_id, model_id, timestamp_ms), ties by event_id
 * so the order is total and deterministic.
 */
export function sortRowsForSegment(c: EventColumns, partitionOf: (row: number) => number): Uint32Array {
  const n = c.rowCount;
  const part = new Float64Array(n);
  for (let row = 0; row < n; row++) part[row] = partitionOf(row);
  const partRank = denseRanks(part);
  // Rows go to their partition by a counting sort, then each partition is sorted on its own:
  // a flush holds ~2,000 partitions, so the comparator runs log2(rows per partition) levels
  // deep instead of log2(rows).
  const starts = new Uint32Array(partRank.count + 1);
  for (let row = 0; row < n; row++) starts[partRank.ranks[row] + 1]++;
  for (let p = 0; p < partRank.count; p++) starts[p + 1] += starts[p];
  const out = new Uint32Array(n);
  const next = starts.slice(0, partRank.count);
  for (let row = 0; row < n; row++) out[next[partRank.ranks[row]]++] = row;
  const keys: [(code: number) => number, Uint32Array, number][] = [
    c.account_id,
    c.product_id,
    c.meter_id,
    c.model_id,
  ].map((col) => [dictRanks(col), col.codes, col.dict.length + 1]);
  // One number per row for (account, product, meter, model) when the ranks fit in 2^53: the
  // comparator then reads two typed arrays instead of calling four rank functions.
  let span = 1;
  for (const [, , size] of keys) span *= size;
  const ts = c.timestamp_ms;
  const ids = c.event_id;
  const byId = (x: number, y: number) => (ids[x] < ids[y] ? -1 : ids[x] > ids[y] ? 1 : 0);
  let compare: (x: number, y: number) => number;
  if (span <= Number.MAX_SAFE_INTEGER) {
    const composite = new Float64Array(n);
    for (let row = 0; row < n; row++) {
      let k = 0;
      for (const [rank, codes, size] of keys) k = k * size + rank(codes[row]);
      composite[row] = k;
    }
    compare = (x, y) => composite[x] - composite[y] || ts[x] - ts[y] || byId(x, y);
  } else {
    const [[acc, ra], [prod, rp], [met, rm], [mod, rd]] = keys;
    compare = (x, y) =>
      acc(ra[x]) - acc(ra[y]) ||
      prod(rp[x]) - prod(rp[y]) ||
      met(rm[x]) - met(rm[y]) ||
      mod(rd[x]) - mod(rd[y]) ||
      ts[x] - ts[y] ||
      byId(x, y);
  }
  for (let p = 0; p < partRank.count; p++) {
    if (starts[p + 1] - starts[p] > 1) out.subarray(starts[p], starts[p + 1]).sort(compare);
  }
  return out;
}

/** Rank of each value among the distinct values (ascending), and how many distinct there are. */
function denseRanks(values: Float64Array): { ranks: Float64Array; count: number } {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const rankOf = new Map(distinct.map((v, i) => [v, i]));
  const ranks = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) ranks[i] = rankOf.get(values[i]) as number;
  return { ranks, count: distinct.length };
}
