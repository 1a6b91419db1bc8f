/**
 * Rollup rows: the events of one raw segment summed per grain and time bucket.
 *
 * Grain (docs/rollups.md): account_id, subscription_id, product_id, meter_id, model_id, unit,
 * kind, source and the bucket (hour, day or month). Dimensions are not in the grain (on the
 * bench workload they make the hour level as large as the raw data): a query that groups or
 * filters by a dimension is answered from raw events.
 *
 * Invariants:
 * - per grain key and bucket, the rows' counts add up to the number of events and their sums
 *   to the exact sum of quantities; a group whose sum would leave ±(10^38 − 1) (what a segment
 *   stores) continues in a new row of the same key, so several rows may share a key;
 * - rows are sorted by account_id (text order), then bucket start: readers find one account's
 *   rows by block bounds;
 * - the columns `timestamp_ms` (the bucket start) and `quantity` (the sum) make a row readable
 *   as an event batch by the query engine, with `count`, `min` and `max` as its weights.
 */
import { assert } from '../errors.ts';
import {
  type DictColumn,
  type EventColumns,
  NULL_CODE,
  type QuantityColumn,
  quantityBigAt,
} from '../model/columns.ts';
import { BIG_ABS_MAX } from '../storage/encoding/varint.ts';
import type { RollupLevel } from '../storage/manifest.ts';
import { bucketStart } from './levels.ts';

export const ROLLUP_DICT_COLUMNS = [
  'account_id',
  'subscription_id',
  'product_id',
  'meter_id',
  'model_id',
  'unit',
  'source',
] as const;
export type RollupDictColumn = (typeof ROLLUP_DICT_COLUMNS)[number];

/** The raw columns a rollup build reads. */
export const ROLLUP_SOURCE_COLUMNS = [...ROLLUP_DICT_COLUMNS, 'kind', 'timestamp_ms', 'quantity'] as const;

export interface RollupRows extends Record<RollupDictColumn, DictColumn> {
  rowCount: number;
  kind: Uint8Array;
  /** Bucket start. */
  timestamp_ms: Float64Array;
  /** Sum of quantities. */
  quantity: QuantityColumn;
  /** Number of events (exact). */
  count: Float64Array;
  min: QuantityColumn;
  max: QuantityColumn;
  /** Earliest and latest event time. */
  first_ts: Float64Array;
  last_ts: Float64Array;
}

const SAFE_MAX = Number.MAX_SAFE_INTEGER;
/** The shortest month: a time within this of a month's start lies in that month. */
const MONTH_MS_MIN = 28 * 86_400_000;

interface Group {
  row: number;
  count: number;
  /** Float sum while safe; the exact value moves to `big` once it leaves the safe range. */
  sum: number;
  big: bigint | null;
  min: number | bigint;
  max: number | bigint;
  first: number;
  last: number;
}

/**
 * Sums `c` (the rollup source columns of one raw segment) per grain key and bucket of `level`.
 * `lines` (from lineIds) may be shared between the levels of one build.
 */
export function buildRollupRows(c: EventColumns, level: RollupLevel, lines: LineIds): RollupRows {
  const n = c.rowCount;
  const groups: Group[] = [];
  const byKey = new Map<string, number>();
  const bucketOf = new Float64Array(n);
  let prevLine = -1;
  let prevBucket = Number.NaN;
  let prevGroup = -1;
  for (let row = 0; row < n; row++) {
    const ts = c.timestamp_ms[row];
    const line = lines.ids[row];
    // Buckets change rarely between neighbours: skip the date arithmetic for months.
    const b =
      level === 'month' && ts >= prevBucket && ts < prevBucket + MONTH_MS_MIN
        ? prevBucket
        : bucketStart(level, ts);
    bucketOf[row] = b;
    let g: number;
    if (line === prevLine && b === prevBucket) g = prevGroup;
    else {
      const key = `${line}:${b}`;
      const found = byKey.get(key);
      if (found === undefined) {
        g = groups.length;
        groups.push(newGroup(row));
        byKey.set(key, g);
      } else g = found;
    }
    const q = c.quantity.values[row];
    const grp = groups[g];
    if (!addToGroup(grp, q, c.quantity, row, ts)) {
      // The sum would leave what a row stores: the key goes on in a new row.
      g = groups.length;
      const fresh = newGroup(row);
      groups.push(fresh);
      byKey.set(`${line}:${b}`, g);
      assert(addToGroup(fresh, q, c.quantity, row, ts), 'one quantity fits a rollup row');
    }
    prevLine = line;
    prevBucket = b;
    prevGroup = g;
  }
  return toRows(c, groups, bucketOf);
}

function newGroup(row: number): Group {
  return {
    row,
    count: 0,
    sum: 0,
    big: null,
    min: Number.POSITIVE_INFINITY,
    max: Number.NEGATIVE_INFINITY,
    first: Number.POSITIVE_INFINITY,
    last: Number.NEGATIVE_INFINITY,
  };
}

/** Adds one event; false (and nothing changed) when the sum would leave ±(10^38 − 1). */
function addToGroup(g: Group, v: number, col: QuantityColumn, row: number, ts: number): boolean {
  if (g.big === null && !Number.isNaN(v)) {
    const t = g.sum + v;
    if (t <= SAFE_MAX && t >= -SAFE_MAX) {
      g.sum = t;
      finishAdd(g, v, ts);
      return true;
    }
  }
  const q = quantityBigAt(col, row);
  const next = (g.big ?? BigInt(g.sum)) + q;
  if (next > BIG_ABS_MAX || next < -BIG_ABS_MAX) return false;
  g.big = next;
  g.sum = 0;
  finishAdd(g, Number.isNaN(v) ? q : v, ts);
  return true;
}

function finishAdd(g: Group, q: number | bigint, ts: number): void {
  g.count++;
  if (q < g.min) g.min = q;
  if (q > g.max) g.max = q;
  if (ts < g.first) g.first = ts;
  if (ts > g.last) g.last = ts;
}

/** Per raw row, the id of its grain line (everything but time), numbered in first-seen order. */
export interface LineIds {
  ids: Int32Array;
  /** A row holding each line. */
  firstRow: number[];
}

export function lineIds(c: EventColumns): LineIds {
  const n = c.rowCount;
  const ids = new Int32Array(n);
  const firstRow: number[] = [];
  const byKey = new Map<string, number>();
  const cols = ROLLUP_DICT_COLUMNS.map((name) => c[name].codes);
  let prev = -1;
  for (let row = 0; row < n; row++) {
    // Neighbours (sorted by account, product, meter, model) usually share their line.
    if (prev >= 0 && c.kind[row] === c.kind[prev] && sameCodes(cols, row, prev)) {
      ids[row] = ids[prev];
      prev = row;
      continue;
    }
    let key = String(c.kind[row]);
    for (let k = 0; k < cols.length; k++) key += `,${cols[k][row]}`;
    let id = byKey.get(key);
    if (id === undefined) {
      id = firstRow.length;
      firstRow.push(row);
      byKey.set(key, id);
    }
    ids[row] = id;
    prev = row;
  }
  return { ids, firstRow };
}

function sameCodes(cols: readonly Uint32Array[], a: number, b: number): boolean {
  for (let k = 0; k < cols.length; k++) if (cols[k][a] !== cols[k][b]) return false;
  return true;
}

/** Finished groups as sorted columns, with dictionaries of only the values used. */
function toRows(c: EventColumns, groups: readonly Group[], bucketOf: Float64Array): RollupRows {
  const accountDict = c.account_id.dict;
  const accountCodes = c.account_id.codes;
  const order = groups.map((_, i) => i);
  order.sort((a, b) => {
    const ga = groups[a];
    const gb = groups[b];
    const aa = accountDict[accountCodes[ga.row]];
    const ab = accountDict[accountCodes[gb.row]];
    if (aa !== ab) return aa < ab ? -1 : 1;
    return bucketOf[ga.row] - bucketOf[gb.row] || a - b;
  });
  const m = groups.length;
  const rows: RollupRows = {
    rowCount: m,
    ...(Object.fromEntries(
      ROLLUP_DICT_COLUMNS.map((name) => [name, remapDict(c[name], order, groups)]),
    ) as Record<RollupDictColumn, DictColumn>),
    kind: new Uint8Array(m),
    timestamp_ms: new Float64Array(m),
    quantity: { values: new Float64Array(m), big: null },
    count: new Float64Array(m),
    min: { values: new Float64Array(m), big: null },
    max: { values: new Float64Array(m), big: null },
    first_ts: new Float64Array(m),
    last_ts: new Float64Array(m),
  };
  for (let i = 0; i < m; i++) {
    const g = groups[order[i]];
    rows.kind[i] = c.kind[g.row];
    rows.timestamp_ms[i] = bucketOf[g.row];
    rows.count[i] = g.count;
    rows.first_ts[i] = g.first;
    rows.last_ts[i] = g.last;
    setQuantity(rows.quantity, i, g.big ?? g.sum);
    setQuantity(rows.min, i, g.min);
    setQuantity(rows.max, i, g.max);
  }
  return rows;
}

function setQuantity(col: QuantityColumn, i: number, q: number | bigint): void {
  if (typeof q === 'number') {
    col.values[i] = q;
    return;
  }
  if (q >= -BigInt(SAFE_MAX) && q <= BigInt(SAFE_MAX)) {
    col.values[i] = Number(q);
    return;
  }
  col.values[i] = Number.NaN;
  col.big ??= new Map();
  col.big.set(i, q);
}

function remapDict(col: DictColumn, order: readonly number[], groups: readonly Group[]): DictColumn {
  const dict: string[] = [];
  const codes = new Uint32Array(order.length);
  const newCode = new Map<number, number>();
  for (let i = 0; i < order.length; i++) {
    const code = col.codes[groups[order[i]].row];
    if (code === NULL_CODE) {
      codes[i] = NULL_CODE;
      continue;
    }
    let nc = newCode.get(code);
    if (nc === undefined) {
      nc = dict.length;
      dict.push(col.dict[code]);
      newCode.set(code, nc);
    }
    codes[i] = nc;
  }
  return { dict, codes };
}
