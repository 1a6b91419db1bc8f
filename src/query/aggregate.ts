/**
 * Filter + group + aggregate over column chunks, on dictionary codes.
 *
 * Per chunk (a segment block or a memtable): filters narrow a selection vector of row indexes,
 * one tight pass per filter, with dictionary filters turned into a mask over the chunk's
 * dictionary once per dictionary; group keys become one integer per row (mixed radix of
 * per-key local codes); rows accumulate into chunk-local slots; then each slot merges into
 * the query's groups by global value ids. Strings are touched once per dictionary entry or
 * per slot, never per row; BigInt only for rows or sums beyond 2^53.
 *
 * Invariants:
 * - sums are exact: a slot's float sum only holds safe integers, and an addition whose result
 *   leaves the safe range moves to the slot's BigInt part instead (both inputs are safe
 *   integers, so an in-range float result is the exact result);
 * - a composite key never exceeds 2^52 (keys are re-numbered densely before they could), so
 *   distinct key tuples never collide;
 * - scratch buffers are only used inside one synchronous `visit`, so concurrent queries (which
 *   interleave only at awaits) may share them.
 */
import { assert, UsageDbError } from '../errors.ts';
import {
  type ColumnBatch,
  type ColumnName,
  type DictColumn,
  type DictColumnName,
  KIND_NAMES,
} from '../model/columns.ts';
import { compareQuantity, type Quantity, toQuantity } from '../model/quantity.ts';
import { DAY_MS, dayLabel, HOUR_MS, hourLabel } from './time.ts';
import {
  DIMENSION_KEY_PREFIX,
  type FilterColumn,
  type GroupKey,
  type Metric,
  type Query,
  type RowValue,
} from './types.ts';

/** More groups than this is not a billing question; the query must be narrowed. */
export const QUERY_GROUPS_MAX = 2_000_000;
const DENSE_SLOTS_MAX = 1 << 16;
const KEY_SPACE_MAX = 2 ** 52;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

type KeySpec =
  | { type: 'dict'; column: DictColumnName }
  | { type: 'kind' }
  | { type: 'day' }
  | { type: 'hour' }
  | { type: 'dim'; dimKey: string };

/** A query group: decoded key values and exact accumulators. */
export interface Group {
  values: RowValue[];
  count: number;
  sum: number;
  sumBig: bigint | null;
  min: Quantity | null;
  max: Quantity | null;
}

export function groupSum(g: Group): Quantity {
  return g.sumBig === null ? g.sum : toQuantity(g.sumBig + BigInt(g.sum));
}

/** Parsed dimension sets per dictionary, kept across queries (dictionaries only grow). */
export class DimensionsCache {
  private readonly parsed = new WeakMap<readonly string[], Record<string, string>[]>();

  of(dict: readonly string[]): Record<string, string>[] {
    let list = this.parsed.get(dict);
    if (list === undefined) {
      list = [];
      this.parsed.set(dict, list);
    }
    for (let c = list.length; c < dict.length; c++) list.push(JSON.parse(dict[c]) as Record<string, string>);
    return list;
  }
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

/** Interns key values to dense ids, per group key. */
class Interner {
  readonly values: (string | null)[] = [];
  private readonly ids = new Map<string | null, number>();

  id(value: string | null): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(value);
      this.ids.set(value, id);
    }
    return id;
  }
}

/** A dimension key's local values over one dimensions dictionary: code + 1 -> local id (0 = absent). */
interface DimKeyCodes {
  local: Uint32Array;
  values: (string | null)[];
}

/** Scratch shared by every aggregation (see the invariants). */
class Scratch {
  identity = new Uint32Array(0);
  sel = new Uint32Array(0);
  keys = new Float64Array(0);
  dense = new Int32Array(DENSE_SLOTS_MAX).fill(-1);
  slotKey = new Float64Array(0);
  rep = new Uint32Array(0);
  cnt = new Float64Array(0);
  sum = new Float64Array(0);
  min = new Float64Array(0);
  max = new Float64Array(0);

  ensureRows(n: number): void {
    if (this.identity.length >= n) return;
    const size = Math.max(n, this.identity.length * 2, 1024);
    this.identity = new Uint32Array(size);
    for (let i = 0; i < size; i++) this.identity[i] = i;
    this.sel = new Uint32Array(size);
    this.keys = new Float64Array(size);
  }

  ensureSlots(n: number): void {
    if (this.slotKey.length >= n) return;
    const size = Math.max(n, this.slotKey.length * 2, 256);
    this.slotKey = new Float64Array(size);
    this.rep = new Uint32Array(size);
    this.cnt = new Float64Array(size);
    this.sum = new Float64Array(size);
    this.min = new Float64Array(size);
    this.max = new Float64Array(size);
  }
}

const scratch = new Scratch();

/** A chunk's size, and which per-chunk work can be skipped. */
export interface ChunkInfo {
  rowCount: number;
  /** Rows may lie outside [from, to): apply the time filter. */
  timeFilter: boolean;
  /** Rows may belong to accounts outside the query's: apply the account filter. */
  accountFilter: boolean;
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
  /** Columns per chunk kind: [timeFilter][accountColumn]. */
  private readonly columnSets: ColumnName[][][];
  private readonly interners: Interner[];
  private readonly translations: Map<readonly string[], Int32Array>[];
  private readonly groupMap = new Map<number | string, Group>();

  constructor(query: Query, needed: ReadonlySet<Metric>, dims: DimensionsCache) {
    this.fromMs = query.fromMs;
    this.toMs = query.toMs;
    this.dims = dims;
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
    this.interners = this.keys.map(() => new Interner());
    this.translations = this.keys.map(() => new Map());
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
    const accountColumn =
      (accountFilter && this.accountFilter !== null) ||
      this.keys.some((k) => k.type === 'dict' && k.column === 'account_id');
    return this.columnSets[timeFilter ? 1 : 0][accountColumn ? 1 : 0];
  }

  get groupCount(): number {
    return this.groupMap.size;
  }

  groups(): IterableIterator<Group> {
    return this.groupMap.values();
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

  /** Filters, groups and accumulates one chunk. */
  visit(batch: ColumnBatch, chunk: ChunkInfo): void {
    const n0 = chunk.rowCount;
    if (n0 === 0) return;
    const sc = scratch;
    sc.ensureRows(n0);
    let sel = sc.identity;
    let n = n0;
    const narrow = (bits: Uint8Array, codes: Uint32Array): void => {
      n = filterByMask(sel, n, codes, bits, sc.sel);
      sel = sc.sel;
    };
    if (this.accountFilter !== null && chunk.accountFilter) {
      const col = batch.account_id as DictColumn;
      const m = this.accountFilter.maskFor(col.dict);
      if (!m.any) return;
      if (!m.all) narrow(m.bits, col.codes);
    }
    for (const f of this.dictFilters) {
      if (n === 0) return;
      const col = batch[f.column] as DictColumn;
      const m = f.maskFor(col.dict);
      if (!m.any) return;
      if (!m.all) narrow(m.bits, col.codes);
    }
    if (this.kindMask !== null && n > 0) {
      n = filterKind(sel, n, batch.kind as Uint8Array, this.kindMask, sc.sel);
      sel = sc.sel;
    }
    if (this.dimFilter.length > 0 && n > 0) {
      const col = batch.dimensions as DictColumn;
      const m = this.dimMask(col.dict);
      if (!m.any) return;
      if (!m.all) narrow(m.bits, col.codes);
    }
    if (chunk.timeFilter && n > 0) {
      n = filterTime(sel, n, batch.timestamp_ms as Float64Array, this.fromMs, this.toMs, sc.sel);
      sel = sc.sel;
    }
    if (n === 0) return;
    const cap = this.computeKeys(batch, sel, n);
    this.accumulate(batch, sel, n, cap);
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

  private accumulate(batch: ColumnBatch, sel: Uint32Array, n: number, cap: number): void {
    const sc = scratch;
    const slots = Math.min(n, cap);
    sc.ensureSlots(slots);
    const { keys, slotKey, rep, cnt, sum, min, max } = sc;
    const grouped = this.keys.length > 0;
    const useDense = cap <= DENSE_SLOTS_MAX;
    const dense = sc.dense;
    const sparse = useDense ? null : new Map<number, number>();
    const quantity = this.needQuantity ? batch.quantity : undefined;
    const values = quantity?.values;
    const needMinMax = this.needMinMax;
    let bigSum: (bigint | undefined)[] | null = null;
    let bigMin: (Quantity | undefined)[] | null = null;
    let bigMax: (Quantity | undefined)[] | null = null;
    let used = 0;
    for (let j = 0; j < n; j++) {
      const row = sel[j];
      const key = grouped ? keys[j] : 0;
      let s = useDense ? dense[key] : ((sparse as Map<number, number>).get(key) ?? -1);
      if (s < 0) {
        s = used++;
        if (useDense) dense[key] = s;
        else (sparse as Map<number, number>).set(key, s);
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
      // NaN marks a quantity beyond 2^53 (its exact value is in the big map).
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
      if (useDense) dense[slotKey[s]] = -1;
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

  /** The query group of a chunk row (the slot's representative), created on first sight. */
  private groupOf(batch: ColumnBatch, row: number): Group {
    const keys = this.keys;
    let gk: number | string = 0;
    for (let k = 0; k < keys.length; k++) {
      const id = this.valueId(k, batch, row);
      gk = k === 0 ? id : `${gk}|${id}`;
    }
    let g = this.groupMap.get(gk);
    if (g === undefined) {
      if (this.groupMap.size >= QUERY_GROUPS_MAX) {
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_QUERY',
          `the query produces more than ${QUERY_GROUPS_MAX} groups; narrow its range or group_by`,
        );
      }
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
        const local = (col.codes[row] + 1) >>> 0;
        const byDict = this.translations[k];
        let trans = byDict.get(col.dict);
        if (trans === undefined || trans.length < col.dict.length + 1) {
          trans = new Int32Array(col.dict.length + 1).fill(-1);
          byDict.set(col.dict, trans);
        }
        let id = trans[local];
        if (id < 0) {
          id = this.interners[k].id(local === 0 ? null : col.dict[local - 1]);
          trans[local] = id;
        }
        return id;
      }
      case 'dim': {
        const col = batch.dimensions as DictColumn;
        const codes = this.dimCodes(k, spec.dimKey, col.dict);
        return this.interners[k].id(codes.values[codes.local[(col.codes[row] + 1) >>> 0]]);
      }
    }
  }

  private valueOf(k: number, batch: ColumnBatch, row: number): RowValue {
    const spec = this.keys[k];
    const id = this.valueId(k, batch, row);
    if (spec.type === 'kind') return KIND_NAMES[id];
    if (spec.type === 'day') return dayLabel(id);
    if (spec.type === 'hour') return hourLabel(id);
    return this.interners[k].values[id];
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

// ---------------------------------------------------------------- tight loops (monomorphic)

function filterByMask(
  sel: Uint32Array,
  n: number,
  codes: Uint32Array,
  bits: Uint8Array,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    if (bits[(codes[row] + 1) >>> 0] === 1) out[m++] = row;
  }
  return m;
}

function filterKind(
  sel: Uint32Array,
  n: number,
  kind: Uint8Array,
  allowed: Uint8Array,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    if (allowed[kind[row]] === 1) out[m++] = row;
  }
  return m;
}

function filterTime(
  sel: Uint32Array,
  n: number,
  ts: Float64Array,
  fromMs: number,
  toMs: number,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    const t = ts[row];
    if (t >= fromMs && t < toMs) out[m++] = row;
  }
  return m;
}

/** keys[j] = keys[j] * card + local code (card 0: first key, keys start fresh). */
function addDictKey(keys: Float64Array, sel: Uint32Array, n: number, codes: Uint32Array, card: number): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = (codes[sel[j]] + 1) >>> 0;
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + ((codes[sel[j]] + 1) >>> 0);
}

function addKindKey(keys: Float64Array, sel: Uint32Array, n: number, kind: Uint8Array, card: number): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = kind[sel[j]];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + kind[sel[j]];
}

function addMappedKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  codes: Uint32Array,
  local: Uint32Array,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = local[(codes[sel[j]] + 1) >>> 0];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + local[(codes[sel[j]] + 1) >>> 0];
}

function addTimeKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  ts: Float64Array,
  unit: number,
  lo: number,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = Math.floor(ts[sel[j]] / unit) - lo;
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + (Math.floor(ts[sel[j]] / unit) - lo);
}

/** [min, max] of the time units (days or hours since the epoch) of the selected rows. */
function timeUnitRange(ts: Float64Array, sel: Uint32Array, n: number, unit: number): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) {
    const u = Math.floor(ts[sel[j]] / unit);
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  return [lo, hi];
}

function timeUnits(ts: Float64Array, sel: Uint32Array, n: number, unit: number): Float64Array {
  const units = new Float64Array(n);
  for (let j = 0; j < n; j++) units[j] = Math.floor(ts[sel[j]] / unit);
  return units;
}

function addLocalKey(keys: Float64Array, n: number, local: Float64Array, card: number): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = local[j];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + local[j];
}

/** Renumbers keys[0..n) densely (first-seen order); returns the new key space size. */
function densify(keys: Float64Array, n: number): number {
  const ids = new Map<number, number>();
  for (let j = 0; j < n; j++) {
    let id = ids.get(keys[j]);
    if (id === undefined) {
      id = ids.size;
      ids.set(keys[j], id);
    }
    keys[j] = id;
  }
  return Math.max(1, ids.size);
}
