/**
 * Filter + group + aggregate over column chunks, on dictionary codes.
 *
 * Per chunk (a segment block or a memtable): filters narrow a selection vector of row indexes,
 * one tight pass per filter, with dictionary filters turned into a mask over the chunk's
 * dictionary once per dictionary. Then one of two paths:
 * - direct (no group key, or one dictionary key such as account_id): each row adds into
 *   query-wide accumulators indexed by the engine's value id of its code (a table per
 *   dictionary), with no per-chunk state at all;
 * - slots (anything else): group keys become one integer per row (mixed radix of per-key
 *   local codes), rows accumulate into chunk-local slots, and each slot merges into the
 *   query's groups by value ids.
 * Strings are touched once per dictionary entry or per slot, never per row; BigInt only for
 * rows or sums beyond 2^53.
 *
 * Invariants:
 * - sums are exact: a float sum only ever holds safe integers, and an addition whose result
 *   leaves the safe range moves to the BigInt part instead (both inputs are safe integers,
 *   so an in-range float result is the exact result);
 * - a composite key never exceeds 2^52 (keys are re-numbered densely before they could), so
 *   distinct key tuples never collide;
 * - the shared scratch is only used inside one synchronous `visit`, so concurrent queries
 *   (which interleave only at awaits) may share it.
 */
import { assert, UsageDbError } from '../errors.ts';
import {
  type ColumnBatch,
  type ColumnName,
  type DictColumn,
  type DictColumnName,
  KIND_NAMES,
  type QuantityColumn,
} from '../model/columns.ts';
import { compareQuantity, type Quantity, toQuantity } from '../model/quantity.ts';
import {
  addDictKey,
  addKindKey,
  addLocalKey,
  addMappedKey,
  addTimeKey,
  DENSE_SLOTS_MAX,
  densify,
  filterByMask,
  filterKind,
  filterTime,
  scratch,
  timeUnitRange,
  timeUnits,
} from './kernels.ts';
import type { ResultGroup } from './order.ts';
import { DAY_MS, dayLabel, HOUR_MS, hourLabel } from './time.ts';
import {
  DIMENSION_KEY_PREFIX,
  type FilterColumn,
  type GroupKey,
  type Metric,
  type Query,
  type RowValue,
} from './types.ts';
import type { DimensionsCache, ValueIds } from './value-ids.ts';

/** More groups than this is not a billing question; the query must be narrowed. */
export const QUERY_GROUPS_MAX = 2_000_000;
const KEY_SPACE_MAX = 2 ** 52;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

type KeySpec =
  | { type: 'dict'; column: DictColumnName }
  | { type: 'kind' }
  | { type: 'day' }
  | { type: 'hour' }
  | { type: 'dim'; dimKey: string };

/** A query group of the slot path: decoded key values and exact accumulators. */
interface Group {
  values: RowValue[];
  count: number;
  sum: number;
  sumBig: bigint | null;
  min: Quantity | null;
  max: Quantity | null;
}

/** A chunk's size, and which per-chunk work can be skipped. */
export interface ChunkInfo {
  rowCount: number;
  /** Rows may lie outside [from, to): apply the time filter. */
  timeFilter: boolean;
  /** Rows may belong to accounts outside the query's: apply the account filter. */
  accountFilter: boolean;
}

/** A mask over a dictionary, indexed by code + 1 (index 0 = null). */
interface Mask {
  bits: Uint8Array;
  any: boolean;
  all: boolean;
}

function buildMask(size: number, allowNull: boolean, test: (code: number) => boolean): Mask {
  const bits = new Uint8Array(size + 1);
  bits[0] = allowNull ? 1 : 0;
  let any = allowNull;
  let all = allowNull;
  for (let c = 0; c < size; c++) {
    const ok = test(c);
    bits[c + 1] = ok ? 1 : 0;
    any ||= ok;
    all &&= ok;
  }
  return { bits, any, all };
}

class DictFilter {
  readonly column: DictColumnName;
  private readonly allowed: ReadonlySet<string>;
  private readonly allowNull: boolean;
  private readonly masks = new Map<readonly string[], Mask>();

  constructor(column: DictColumnName, values: readonly (string | null)[]) {
    this.column = column;
    this.allowed = new Set(values.filter((v): v is string => v !== null));
    this.allowNull = values.includes(null);
  }

  maskFor(dict: readonly string[]): Mask {
    let m = this.masks.get(dict);
    // A memtable dictionary may have grown since: rebuild over its current length.
    if (m === undefined || m.bits.length < dict.length + 1) {
      m = buildMask(dict.length, this.allowNull, (c) => this.allowed.has(dict[c]));
      this.masks.set(dict, m);
    }
    return m;
  }
}

/** A dimension key's local values over one dimensions dictionary: code + 1 -> local id (0 = absent). */
interface DimKeyCodes {
  local: Uint32Array;
  values: (string | null)[];
}

function keySpec(key: GroupKey): KeySpec {
  if (key === 'kind') return { type: 'kind' };
  if (key === 'day') return { type: 'day' };
  if (key === 'hour') return { type: 'hour' };
  if (key.startsWith(DIMENSION_KEY_PREFIX))
    return { type: 'dim', dimKey: key.slice(DIMENSION_KEY_PREFIX.length) };
  return { type: 'dict', column: key as DictColumnName };
}

const DICT_FILTER_COLUMNS: readonly Exclude<FilterColumn, 'kind'>[] = [
  'product_id',
  'meter_id',
  'model_id',
  'source',
  'unit',
  'subscription_id',
];

/** Query-wide accumulators indexed by value id (the direct path). */
class DirectGroups {
  cnt = new Float64Array(0);
  sum = new Float64Array(0);
  min = new Float64Array(0);
  max = new Float64Array(0);
  sumBig: Map<number, bigint> | null = null;
  minBig: Map<number, Quantity> | null = null;
  maxBig: Map<number, Quantity> | null = null;
  readonly touched: number[] = [];

  ensure(size: number): void {
    if (this.cnt.length >= size) return;
    const next = Math.max(size, this.cnt.length * 2, 64);
    const grow = (a: Float64Array, fill: number) => {
      const b = new Float64Array(next).fill(fill);
      b.set(a);
      return b;
    };
    this.cnt = grow(this.cnt, 0);
    this.sum = grow(this.sum, 0);
    this.min = grow(this.min, Number.POSITIVE_INFINITY);
    this.max = grow(this.max, Number.NEGATIVE_INFINITY);
  }

  /** Adds a row beyond 2^53 (rare). */
  addBig(g: number, q: bigint, needMinMax: boolean): void {
    this.sumBig ??= new Map();
    this.sumBig.set(g, (this.sumBig.get(g) ?? 0n) + q);
    if (!needMinMax) return;
    this.minBig ??= new Map();
    this.maxBig ??= new Map();
    const lo = this.minBig.get(g);
    const hi = this.maxBig.get(g);
    if (lo === undefined || compareQuantity(q, lo) < 0) this.minBig.set(g, q);
    if (hi === undefined || compareQuantity(q, hi) > 0) this.maxBig.set(g, q);
  }

  /** Moves a float sum that would leave the safe range into the BigInt part. */
  spill(g: number, v: number): void {
    this.sumBig ??= new Map();
    this.sumBig.set(g, (this.sumBig.get(g) ?? 0n) + BigInt(this.sum[g]) + BigInt(v));
    this.sum[g] = 0;
  }

  result(g: number, values: RowValue[]): ResultGroup {
    const big = this.sumBig?.get(g);
    const sum = big === undefined ? this.sum[g] : toQuantity(big + BigInt(this.sum[g]));
    let min: Quantity | null = this.min[g] === Number.POSITIVE_INFINITY ? null : this.min[g];
    let max: Quantity | null = this.max[g] === Number.NEGATIVE_INFINITY ? null : this.max[g];
    const lo = this.minBig?.get(g);
    const hi = this.maxBig?.get(g);
    if (lo !== undefined && (min === null || compareQuantity(lo, min) < 0)) min = lo;
    if (hi !== undefined && (max === null || compareQuantity(hi, max) > 0)) max = hi;
    return { values, count: this.cnt[g], sum, min, max };
  }
}

export interface AggregatorCaches {
  dims: DimensionsCache;
  ids: ValueIds;
}

export class Aggregator {
  private readonly fromMs: number;
  private readonly toMs: number;
  private readonly keys: KeySpec[];
  private readonly dictFilters: DictFilter[];
  private readonly accountFilter: DictFilter | null;
  private readonly kindMask: Uint8Array | null;
  private readonly dimFilter: readonly (readonly [string, string])[];
  private readonly dimFilterMasks = new Map<readonly string[], Mask>();
  private readonly dimKeyCodes: Map<readonly string[], DimKeyCodes>[];
  private readonly needQuantity: boolean;
  private readonly needMinMax: boolean;
  private readonly dims: DimensionsCache;
  private readonly ids: ValueIds;
  /** Columns per chunk kind: [timeFilter][accountColumn]. */
  private readonly columnSets: ColumnName[][][];
  private readonly groupsAccount: boolean;
  /** The direct path's accumulators, or null on the slot path. */
  private readonly direct: DirectGroups | null;
  private readonly groupMap = new Map<number | string, Group>();

  constructor(query: Query, needed: ReadonlySet<Metric>, caches: AggregatorCaches) {
    this.fromMs = query.fromMs;
    this.toMs = query.toMs;
    this.dims = caches.dims;
    this.ids = caches.ids;
    this.keys = query.groupBy.map(keySpec);
    this.dictFilters = [];
    for (const column of DICT_FILTER_COLUMNS) {
      const values = query.filters[column];
      if (values !== undefined) this.dictFilters.push(new DictFilter(column, values));
    }
    this.accountFilter = query.accountIds === null ? null : new DictFilter('account_id', query.accountIds);
    const kinds = query.filters.kind;
    this.kindMask =
      kinds === undefined ? null : Uint8Array.from(KIND_NAMES, (k) => (kinds.includes(k) ? 1 : 0));
    this.dimFilter = query.dimensions;
    this.dimKeyCodes = this.keys.map(() => new Map());
    this.needQuantity = needed.has('sum') || needed.has('min') || needed.has('max');
    this.needMinMax = needed.has('min') || needed.has('max');
    this.groupsAccount = this.keys.some((k) => k.type === 'dict' && k.column === 'account_id');
    const directable = this.keys.length === 0 || (this.keys.length === 1 && this.keys[0].type === 'dict');
    this.direct = directable ? new DirectGroups() : null;
    this.columnSets = [false, true].map((time) =>
      [false, true].map((account) => this.columns(time, account)),
    );
  }

  private columns(timeFilter: boolean, accountColumn: boolean): ColumnName[] {
    const names = new Set<ColumnName>();
    for (const f of this.dictFilters) names.add(f.column);
    if (accountColumn) names.add('account_id');
    if (this.kindMask !== null) names.add('kind');
    if (this.dimFilter.length > 0) names.add('dimensions');
    for (const k of this.keys) {
      if (k.type === 'dict') names.add(k.column);
      else if (k.type === 'kind') names.add('kind');
      else if (k.type === 'dim') names.add('dimensions');
      else names.add('timestamp_ms');
    }
    if (timeFilter) names.add('timestamp_ms');
    if (this.needQuantity) names.add('quantity');
    return [...names];
  }

  /** Columns a chunk needs, given whether it needs the time and account filters. */
  columnsFor(timeFilter: boolean, accountFilter: boolean): readonly ColumnName[] {
    const accountColumn = (accountFilter && this.accountFilter !== null) || this.groupsAccount;
    return this.columnSets[timeFilter ? 1 : 0][accountColumn ? 1 : 0];
  }

  /** Filters, groups and accumulates one chunk. */
  visit(batch: ColumnBatch, chunk: ChunkInfo): void {
    const n0 = chunk.rowCount;
    if (n0 === 0) return;
    const sc = scratch;
    sc.ensureRows(n0);
    let sel = sc.identity;
    let n = n0;
    if (this.accountFilter !== null && chunk.accountFilter) {
      const col = batch.account_id as DictColumn;
      const m = this.accountFilter.maskFor(col.dict);
      if (!m.any) return;
      if (!m.all) {
        n = filterByMask(sel, n, col.codes, m.bits, sc.sel);
        sel = sc.sel;
      }
    }
    for (let i = 0; i < this.dictFilters.length && n > 0; i++) {
      const f = this.dictFilters[i];
      const col = batch[f.column] as DictColumn;
      const m = f.maskFor(col.dict);
      if (!m.any) return;
      if (!m.all) {
        n = filterByMask(sel, n, col.codes, m.bits, sc.sel);
        sel = sc.sel;
      }
    }
    if (this.kindMask !== null && n > 0) {
      n = filterKind(sel, n, batch.kind as Uint8Array, this.kindMask, sc.sel);
      sel = sc.sel;
    }
    if (this.dimFilter.length > 0 && n > 0) {
      const col = batch.dimensions as DictColumn;
      const m = this.dimMask(col.dict);
      if (!m.any) return;
      if (!m.all) {
        n = filterByMask(sel, n, col.codes, m.bits, sc.sel);
        sel = sc.sel;
      }
    }
    if (chunk.timeFilter && n > 0) {
      n = filterTime(sel, n, batch.timestamp_ms as Float64Array, this.fromMs, this.toMs, sc.sel);
      sel = sc.sel;
    }
    if (n === 0) return;
    if (this.direct !== null) {
      this.accumulateDirect(this.direct, batch, sel, n);
      return;
    }
    const cap = this.computeKeys(batch, sel, n);
    this.accumulateSlots(batch, sel, n, cap);
  }

  private accumulateDirect(d: DirectGroups, batch: ColumnBatch, sel: Uint32Array, n: number): void {
    const spec = this.keys[0];
    let codes: Uint32Array | null = null;
    let gids: Int32Array | null = null;
    if (spec !== undefined && spec.type === 'dict') {
      const col = batch[spec.column] as DictColumn;
      codes = col.codes;
      gids = this.ids.codes(col.dict);
      d.ensure(this.ids.size);
    } else {
      d.ensure(1);
    }
    const quantity = this.needQuantity ? (batch.quantity as QuantityColumn) : null;
    if (quantity === null) {
      countDirect(d, sel, n, codes, gids);
      return;
    }
    const { cnt, sum, min, max, touched } = d;
    const values = quantity.values;
    const needMinMax = this.needMinMax;
    for (let j = 0; j < n; j++) {
      const row = sel[j];
      const g = codes === null ? 0 : (gids as Int32Array)[(codes[row] + 1) >>> 0];
      if (cnt[g] === 0) touched.push(g);
      cnt[g]++;
      const v = values[row];
      // NaN marks a quantity beyond 2^53 (its exact value is in the big map).
      if (Number.isNaN(v)) {
        const q = quantity.big?.get(row);
        assert(q !== undefined, `quantity row ${row} is NaN without a big value`);
        d.addBig(g, q, needMinMax);
        continue;
      }
      const t = sum[g] + v;
      if (t <= SAFE_MAX && t >= -SAFE_MAX) sum[g] = t;
      else d.spill(g, v);
      if (needMinMax) {
        if (v < min[g]) min[g] = v;
        if (v > max[g]) max[g] = v;
      }
    }
  }

  private dimMask(dict: readonly string[]): Mask {
    let m = this.dimFilterMasks.get(dict);
    if (m === undefined || m.bits.length < dict.length + 1) {
      const parsed = this.dims.of(dict);
      m = buildMask(dict.length, false, (c) => this.dimFilter.every(([k, v]) => parsed[c][k] === v));
      this.dimFilterMasks.set(dict, m);
    }
    return m;
  }

  private dimCodes(keyIndex: number, dimKey: string, dict: readonly string[]): DimKeyCodes {
    const byDict = this.dimKeyCodes[keyIndex];
    let codes = byDict.get(dict);
    if (codes === undefined || codes.local.length < dict.length + 1) {
      const parsed = this.dims.of(dict);
      const local = new Uint32Array(dict.length + 1);
      const values: (string | null)[] = [null];
      const ids = new Map<string, number>();
      for (let c = 0; c < dict.length; c++) {
        const v = parsed[c][dimKey];
        if (v === undefined) continue;
        let id = ids.get(v);
        if (id === undefined) {
          id = values.length;
          values.push(v);
          ids.set(v, id);
        }
        local[c + 1] = id;
      }
      codes = { local, values };
      byDict.set(dict, codes);
    }
    return codes;
  }

  /** Writes each selected row's composite key into scratch.keys; returns the key space size. */
  private computeKeys(batch: ColumnBatch, sel: Uint32Array, n: number): number {
    const keys = scratch.keys;
    let cap = 1;
    for (let k = 0; k < this.keys.length; k++) {
      const spec = this.keys[k];
      let card: number;
      if (spec.type === 'dict') {
        const col = batch[spec.column] as DictColumn;
        card = col.dict.length + 1;
        if (cap * card > KEY_SPACE_MAX) cap = densify(keys, n);
        addDictKey(keys, sel, n, col.codes, cap === 1 ? 0 : card);
      } else if (spec.type === 'kind') {
        card = KIND_NAMES.length;
        if (cap * card > KEY_SPACE_MAX) cap = densify(keys, n);
        addKindKey(keys, sel, n, batch.kind as Uint8Array, cap === 1 ? 0 : card);
      } else if (spec.type === 'dim') {
        const col = batch.dimensions as DictColumn;
        const codes = this.dimCodes(k, spec.dimKey, col.dict);
        card = codes.values.length;
        if (cap * card > KEY_SPACE_MAX) cap = densify(keys, n);
        addMappedKey(keys, sel, n, col.codes, codes.local, cap === 1 ? 0 : card);
      } else {
        const unit = spec.type === 'day' ? DAY_MS : HOUR_MS;
        const ts = batch.timestamp_ms as Float64Array;
        const [lo, hi] = timeUnitRange(ts, sel, n, unit);
        card = hi - lo + 1;
        if (card > Math.max(4 * n, 1024)) {
          // Few rows spread over a long time: number the distinct units densely instead.
          const units = timeUnits(ts, sel, n, unit);
          card = Math.max(1, densify(units, n));
          if (cap * card > KEY_SPACE_MAX) cap = densify(keys, n);
          addLocalKey(keys, n, units, cap === 1 ? 0 : card);
        } else {
          if (cap * card > KEY_SPACE_MAX) cap = densify(keys, n);
          addTimeKey(keys, sel, n, ts, unit, lo, cap === 1 ? 0 : card);
        }
      }
      assert(cap * card <= KEY_SPACE_MAX, 'composite group key space exceeds 2^52');
      cap *= card;
    }
    return cap;
  }

  private accumulateSlots(batch: ColumnBatch, sel: Uint32Array, n: number, cap: number): void {
    const sc = scratch;
    sc.ensureSlots(Math.min(n, cap));
    const { keys, slotKey, rep, cnt, sum, min, max } = sc;
    const useDense = cap <= DENSE_SLOTS_MAX;
    const dense = sc.dense;
    const sparse = useDense ? null : new Map<number, number>();
    const quantity = this.needQuantity ? (batch.quantity as QuantityColumn) : null;
    const values = quantity?.values;
    const needMinMax = this.needMinMax;
    let bigSum: (bigint | undefined)[] | null = null;
    let bigMin: (Quantity | undefined)[] | null = null;
    let bigMax: (Quantity | undefined)[] | null = null;
    let used = 0;
    for (let j = 0; j < n; j++) {
      const row = sel[j];
      const key = keys[j];
      let s = sparse === null ? dense[key] : (sparse.get(key) ?? -1);
      if (s < 0) {
        s = used++;
        if (sparse === null) dense[key] = s;
        else sparse.set(key, s);
        slotKey[s] = key;
        rep[s] = row;
        cnt[s] = 0;
        sum[s] = 0;
        min[s] = Number.POSITIVE_INFINITY;
        max[s] = Number.NEGATIVE_INFINITY;
      }
      cnt[s]++;
      if (values === undefined) continue;
      const v = values[row];
      if (!Number.isNaN(v)) {
        const t = sum[s] + v;
        if (t <= SAFE_MAX && t >= -SAFE_MAX) {
          sum[s] = t;
        } else {
          bigSum ??= [];
          bigSum[s] = (bigSum[s] ?? 0n) + BigInt(sum[s]) + BigInt(v);
          sum[s] = 0;
        }
        if (needMinMax) {
          if (v < min[s]) min[s] = v;
          if (v > max[s]) max[s] = v;
        }
      } else {
        // Beyond 2^53: the exact value is in the big map (rare).
        const q = quantity?.big?.get(row);
        assert(q !== undefined, `quantity row ${row} is NaN without a big value`);
        bigSum ??= [];
        bigSum[s] = (bigSum[s] ?? 0n) + q;
        if (needMinMax) {
          bigMin ??= [];
          bigMax ??= [];
          const lo = bigMin[s];
          const hi = bigMax[s];
          if (lo === undefined || compareQuantity(q, lo) < 0) bigMin[s] = q;
          if (hi === undefined || compareQuantity(q, hi) > 0) bigMax[s] = q;
        }
      }
    }
    for (let s = 0; s < used; s++) {
      if (sparse === null) dense[slotKey[s]] = -1;
      const g = this.groupOf(batch, rep[s]);
      g.count += cnt[s];
      addToGroup(g, sum[s], bigSum?.[s]);
      if (needMinMax) {
        if (min[s] !== Number.POSITIVE_INFINITY) mergeMinMax(g, min[s], max[s]);
        const lo = bigMin?.[s];
        const hi = bigMax?.[s];
        if (lo !== undefined && hi !== undefined) mergeMinMax(g, lo, hi);
      }
    }
  }

  /** The query group of a chunk row (a slot's representative), created on first sight. */
  private groupOf(batch: ColumnBatch, row: number): Group {
    const keys = this.keys;
    let gk: number | string = 0;
    for (let k = 0; k < keys.length; k++) {
      const id = this.valueId(k, batch, row);
      gk = k === 0 ? id : `${gk}|${id}`;
    }
    let g = this.groupMap.get(gk);
    if (g === undefined) {
      if (this.groupMap.size >= QUERY_GROUPS_MAX) throw tooManyGroups();
      g = {
        values: keys.map((_, k) => this.valueOf(k, batch, row)),
        count: 0,
        sum: 0,
        sumBig: null,
        min: null,
        max: null,
      };
      this.groupMap.set(gk, g);
    }
    return g;
  }

  /** A number identifying the row's value of group key k across chunks. */
  private valueId(k: number, batch: ColumnBatch, row: number): number {
    const spec = this.keys[k];
    switch (spec.type) {
      case 'kind':
        return (batch.kind as Uint8Array)[row];
      case 'day':
        return Math.floor((batch.timestamp_ms as Float64Array)[row] / DAY_MS);
      case 'hour':
        return Math.floor((batch.timestamp_ms as Float64Array)[row] / HOUR_MS);
      case 'dict': {
        const col = batch[spec.column] as DictColumn;
        return this.ids.codes(col.dict)[(col.codes[row] + 1) >>> 0];
      }
      case 'dim': {
        const col = batch.dimensions as DictColumn;
        const codes = this.dimCodes(k, spec.dimKey, col.dict);
        return this.ids.id(codes.values[codes.local[(col.codes[row] + 1) >>> 0]]);
      }
    }
  }

  private valueOf(k: number, batch: ColumnBatch, row: number): RowValue {
    const spec = this.keys[k];
    const id = this.valueId(k, batch, row);
    if (spec.type === 'kind') return KIND_NAMES[id];
    if (spec.type === 'day') return dayLabel(id);
    if (spec.type === 'hour') return hourLabel(id);
    return this.ids.values[id];
  }

  /** The finished groups (unordered). */
  results(): ResultGroup[] {
    const out: ResultGroup[] = [];
    const d = this.direct;
    if (d !== null) {
      if (d.touched.length > QUERY_GROUPS_MAX) throw tooManyGroups();
      const keyed = this.keys.length === 1;
      for (const g of d.touched) out.push(d.result(g, keyed ? [this.ids.values[g]] : []));
      return out;
    }
    for (const g of this.groupMap.values()) {
      const sum = g.sumBig === null ? g.sum : toQuantity(g.sumBig + BigInt(g.sum));
      out.push({ values: g.values, count: g.count, sum, min: g.min, max: g.max });
    }
    return out;
  }
}

function tooManyGroups(): UsageDbError {
  return new UsageDbError(
    'USAGEDB_ERR_INVALID_QUERY',
    `the query produces more than ${QUERY_GROUPS_MAX} groups; narrow its range or group_by`,
  );
}

/** Count-only direct accumulation (no quantity column read). */
function countDirect(
  d: DirectGroups,
  sel: Uint32Array,
  n: number,
  codes: Uint32Array | null,
  gids: Int32Array | null,
): void {
  const { cnt, touched } = d;
  if (codes === null || gids === null) {
    if (cnt[0] === 0) touched.push(0);
    cnt[0] += n;
    return;
  }
  for (let j = 0; j < n; j++) {
    const g = gids[(codes[sel[j]] + 1) >>> 0];
    if (cnt[g] === 0) touched.push(g);
    cnt[g]++;
  }
}

function addToGroup(g: Group, small: number, big: bigint | undefined): void {
  const t = g.sum + small;
  if (t <= SAFE_MAX && t >= -SAFE_MAX) {
    g.sum = t;
  } else {
    g.sumBig = (g.sumBig ?? 0n) + BigInt(g.sum) + BigInt(small);
    g.sum = 0;
  }
  if (big !== undefined) g.sumBig = (g.sumBig ?? 0n) + big;
}

function mergeMinMax(g: Group, lo: Quantity, hi: Quantity): void {
  if (g.min === null || compareQuantity(lo, g.min) < 0) g.min = lo;
  if (g.max === null || compareQuantity(hi, g.max) > 0) g.max = hi;
}
