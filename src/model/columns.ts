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
