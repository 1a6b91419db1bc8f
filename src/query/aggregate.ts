/**
 * Filter + group + aggregate over column chunks, on dictionary codes.
 *
 * Per chunk (a segment block or a memtable): filters narrow a selection vector of row indexes,
 * one tight pass per filter, with dictionary filters turned into a mask over the chunk's
 * dictionary once per dictionary. Group keys become one integer per row: a mixed radix of
 * per-key local codes. Chunks that share their dictionaries (every block of a segment file)
 * share a key context, whose table maps that integer to a query group index once; rows then
 * add straight into query-wide accumulator arrays indexed by group. Strings are touched once
 * per dictionary entry or per new (context, group), never per row; BigInt only for rows or
 * sums beyond 2^53. A key space too large for one number falls back to chunk-local keys.
 *
 * Invariants:
 * - sums are exact: a float sum only ever holds safe integers, and an addition whose result
 *   leaves the safe range moves to the BigInt part instead (both inputs are safe integers,
 *   so an in-range float result is the exact result);
 * - within a context, a key number identifies one tuple of key values (cards are fixed when
 *   the context is made, and a composite key stays below 2^52), so the table never conflates
 *   groups; across contexts, groups meet through engine-wide value ids;
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
  addDictKeys,
  addKindKey,
  addLocalKey,
  addMappedKey,
  addTimeKey,
  densify,
  filterAllByMask,
  filterByMask,
  filterKind,
  filterTime,
  scratch,
  timeUnitRange,
  timeUnits,
} from './kernels.ts';
import { combineRanks, type ResultGroup, slotsToRanks } from './order.ts';
import { type BlockSummary, type SummaryShape, summaryShape } from './summary.ts';
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
/** Key spaces up to this size get a dense table per context (4 bytes an entry). */
const CONTEXT_TABLE_MAX = 1 << 20;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;
const NO_QUANTITY: QuantityColumn = { values: new Float64Array(0), big: null };

type KeySpec =
  | { type: 'dict'; column: DictColumnName }
  | { type: 'kind' }
  | { type: 'day' }
  | { type: 'hour' }
  | { type: 'dim'; dimKey: string };

/** A chunk's size, and which per-chunk work can be skipped. */
export interface ChunkInfo {
  rowCount: number;
  /** Rows may lie outside [from, to): apply the time filter. */
  timeFilter: boolean;
  /** Rows may belong to accounts outside the query's: apply the account filter. */
  accountFilter: boolean;
  /** Rollup rows: each row stands for `count` events with these min/max (absent: one event a row). */
  weights?: RowWeights;
}

export interface RowWeights {
  count: Float64Array;
  min: QuantityColumn;
  max: QuantityColumn;
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
      m =
        this.allowed.size * 8 < dict.length
          ? this.sparseMask(dict)
          : buildMask(dict.length, this.allowNull, (c) => this.allowed.has(dict[c]));
      this.masks.set(dict, m);
    }
    return m;
  }

  /** A few values (one account) in a long dictionary: their codes through the dictionary's index. */
  private sparseMask(dict: readonly string[]): Mask {
    const bits = new Uint8Array(dict.length + 1);
    bits[0] = this.allowNull ? 1 : 0;
    let set = this.allowNull ? 1 : 0;
    const index = codeIndex(dict);
    for (const v of this.allowed) {
      const code = index.get(v);
      if (code === undefined) continue;
      bits[code + 1] = 1;
      set++;
    }
    return { bits, any: set > 0, all: set === dict.length + 1 };
  }
}

const codeIndexes = new WeakMap<readonly string[], Map<string, number>>();

/**
 * Code of each value of a dictionary, kept while the dictionary lives (segment dictionaries are
 * shared by every query reading them). A memtable dictionary that grew gets a new index.
 */
export function codeIndex(dict: readonly string[]): Map<string, number> {
  let index = codeIndexes.get(dict);
  if (index === undefined || index.size < dict.length) {
    index = new Map();
    for (let c = 0; c < dict.length; c++) index.set(dict[c], c);
    codeIndexes.set(dict, index);
  }
  return index;
}

const sortedLengths = new WeakMap<readonly string[], number>();

/**
 * Whether a dictionary is in ascending text order (UTF-16 code units, the result order), so
 * that its codes order its values. Checked once per dictionary and length (a memtable
 * dictionary grows; segment and rollup dictionaries are written sorted).
 */
function isSortedDict(dict: readonly string[]): boolean {
  const known = sortedLengths.get(dict);
  if (known !== undefined) return known === dict.length;
  let sorted = true;
  for (let c = 1; c < dict.length && sorted; c++) sorted = dict[c - 1] < dict[c];
  sortedLengths.set(dict, sorted ? dict.length : -1);
  return sorted;
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

/** Query-wide accumulators indexed by group. */
class GroupAccumulators {
  /** min/max arrays are only kept when a query needs them. */
  private readonly minMax: boolean;
  cnt = new Float64Array(0);
  sum = new Float64Array(0);
  min = new Float64Array(0);
  max = new Float64Array(0);
  sumBig: Map<number, bigint> | null = null;
  minBig: Map<number, Quantity> | null = null;
  maxBig: Map<number, Quantity> | null = null;

  constructor(minMax: boolean) {
    this.minMax = minMax;
  }

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
    if (!this.minMax) return;
    this.min = grow(this.min, Number.POSITIVE_INFINITY);
    this.max = grow(this.max, Number.NEGATIVE_INFINITY);
  }

  /** Adds a row beyond 2^53 (rare). */
  addBig(g: number, q: bigint, needMinMax: boolean): void {
    this.sumBig ??= new Map();
    this.sumBig.set(g, (this.sumBig.get(g) ?? 0n) + q);
    if (needMinMax) this.minMaxBig(g, q);
  }

  /** Min/max of a value beyond 2^53. */
  minMaxBig(g: number, q: bigint): void {
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

  sumOf(g: number): Quantity {
    const big = this.sumBig?.get(g);
    return big === undefined ? this.sum[g] : toQuantity(big + BigInt(this.sum[g]));
  }

  extremeOf(g: number, which: 'min' | 'max'): Quantity | null {
    if (!this.minMax) return null;
    const sign = which === 'min' ? -1 : 1;
    const small = (which === 'min' ? this.min : this.max)[g];
    let q: Quantity | null = Number.isFinite(small) ? small : null;
    const big = (which === 'min' ? this.minBig : this.maxBig)?.get(g);
    if (big !== undefined && (q === null || sign * compareQuantity(big, q) > 0)) q = big;
    return q;
  }
}

/**
 * Context tables are sized by the key space of a file's dictionaries (a billing line: about
 * 50,000 entries), so queries reuse them: a table comes back zeroed (only its used keys are
 * cleared) instead of being allocated and filled for every query.
 */
const TABLE_POOL_BYTES_MAX = 16 * 1024 * 1024;
/** Widest span of one key's value ids ranked through rankTable (beyond it: rank by values). */
const RANK_SPAN_MAX = 1 << 22;
let rankTable = new Int32Array(1024);
const tablePool: Int32Array[] = [];
let tablePoolBytes = 0;

function takeTable(size: number): Int32Array {
  for (let i = tablePool.length - 1; i >= 0; i--) {
    const t = tablePool[i];
    if (t.length !== size) continue;
    tablePool.splice(i, 1);
    tablePoolBytes -= t.byteLength;
    return t;
  }
  return new Int32Array(size);
}

function giveTable(table: Int32Array, used: readonly number[]): void {
  for (let i = 0; i < used.length; i++) table[used[i]] = 0;
  if (tablePoolBytes + table.byteLength > TABLE_POOL_BYTES_MAX) return;
  tablePool.push(table);
  tablePoolBytes += table.byteLength;
}

export interface AggregatorCaches {
  dims: DimensionsCache;
  ids: ValueIds;
}

export class Aggregator {
  private fromMs: number;
  private toMs: number;
  private readonly keys: KeySpec[];
  private readonly dictFilters: DictFilter[];
  private readonly accountFilter: DictFilter | null;
  private readonly kindMask: Uint8Array | null;
  private readonly dimFilter: readonly (readonly [string, string])[];
  private readonly dimFilterMasks = new Map<readonly string[], Mask>();
  private readonly dimKeyCodes: Map<readonly string[], DimKeyCodes>[];
  private readonly needQuantity: boolean;
  /** The query reads min or max (rollup rows then carry theirs as weights). */
  readonly needMinMax: boolean;
  private readonly dims: DimensionsCache;
  private readonly ids: ValueIds;
  /** Columns per chunk kind: [timeFilter][accountColumn]. */
  private readonly columnSets: ColumnName[][][];
  private readonly groupsAccount: boolean;
  private readonly acc: GroupAccumulators;
  /** Group key (value ids) -> group index, and each group's decoded key values. */
  /**
   * Group by key, for groups made before `indexed` (see groupFor): while one key context makes
   * every group, its own table already keeps keys apart and this index is not needed.
   */
  private readonly groupIndex = new Map<number | string, number>();
  private readonly groupKeys: (number | string)[] = [];
  private indexed = 0;
  /** The only context that made groups so far (undefined: none yet; null: several). */
  private soleContext: KeyContext | null | undefined = undefined;
  /** Each group's key value ids, keyCount per group (ranks are computed from them). */
  private readonly groupIds: number[] = [];
  /** The value ids of the row groupFor is keying. */
  private readonly idScratch: number[] = [];
  /** Each key's share of a 52-bit numeric group key. */
  private readonly keyWidth: number;
  private readonly contexts: KeyContext[] = [];
  /** Cards of day/hour keys: the query's range in those units. */
  private readonly timeBase: number[];
  private readonly timeCard: number[];
  /** What block summaries of this query group by (null: summaries cannot serve it). */
  readonly shape: SummaryShape | null;

  constructor(query: Query, needed: ReadonlySet<Metric>, caches: AggregatorCaches) {
    this.fromMs = query.fromMs;
    this.toMs = query.toMs;
    this.dims = caches.dims;
    this.ids = caches.ids;
    this.keys = query.groupBy.map(keySpec);
    this.keyWidth = 2 ** Math.floor(52 / Math.max(1, this.keys.length));
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
    this.acc = new GroupAccumulators(this.needMinMax);
    this.groupsAccount = this.keys.some((k) => k.type === 'dict' && k.column === 'account_id');
    this.timeBase = this.keys.map((k) =>
      k.type === 'day'
        ? Math.floor(query.fromMs / DAY_MS)
        : k.type === 'hour'
          ? Math.floor(query.fromMs / HOUR_MS)
          : 0,
    );
    this.timeCard = this.keys.map((k, i) => {
      if (k.type !== 'day' && k.type !== 'hour') return 0;
      return Math.floor((query.toMs - 1) / (k.type === 'day' ? DAY_MS : HOUR_MS)) - this.timeBase[i] + 1;
    });
    this.columnSets = [false, true].map((time) =>
      [false, true].map((account) => this.columns(time, account)),
    );
    this.shape = this.shapeOf();
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

  /**
   * Narrows the time filter to a part of the query's range (rollup pieces, raw edges); group
   * keys keep the query's own range.
   */
  setRange(fromMs: number, toMs: number): void {
    this.fromMs = fromMs;
    this.toMs = toMs;
  }

  /** Columns a chunk needs, given whether it needs the time and account filters. */
  columnsFor(timeFilter: boolean, accountFilter: boolean): readonly ColumnName[] {
    const accountColumn = (accountFilter && this.accountFilter !== null) || this.groupsAccount;
    return this.columnSets[timeFilter ? 1 : 0][accountColumn ? 1 : 0];
  }

  /**
   * Whether block summaries (summary.ts) can stand for a block's rows: every filter and key is
   * a summary column (no dimension filter or key, no hour key), the block lies wholly in the
   * range (and in one day, for a day key), and the query reads some column at all.
   */
  summaryServes(timeFilter: boolean, oneDay: boolean): boolean {
    if (this.shape === null) return false;
    if (timeFilter) return false;
    return oneDay || !this.keys.some((k) => k.type === 'day');
  }

  /** The summary shape of this query (null when summaries cannot serve it; see summaryServes). */
  private shapeOf(): SummaryShape | null {
    if (this.dimFilter.length > 0) return null;
    if (this.keys.length === 0 && !this.needQuantity) return null;
    const dicts: DictColumnName[] = this.dictFilters.map((f) => f.column);
    let kind = this.kindMask !== null;
    for (const k of this.keys) {
      if (k.type === 'dim' || k.type === 'hour') return null;
      if (k.type === 'dict') dicts.push(k.column);
      if (k.type === 'kind') kind = true;
    }
    return summaryShape(
      dicts,
      kind,
      this.needMinMax,
      this.keys.some((k) => k.type === 'day'),
    );
  }

  /** Columns to decode to build a summary. */
  summaryColumns(): readonly ColumnName[] {
    assert(this.shape !== null, 'no summary shape');
    return this.shape.columns;
  }

  /** Accumulates a block through its summary (groups as weighted rows). */
  visitSummary(summary: BlockSummary, accountFilter: boolean): void {
    const batch = summary.batch;
    this.visit(batch, {
      rowCount: batch.rowCount,
      timeFilter: false,
      accountFilter,
      // min/max are read only when the query needs them, and then the shape keeps them.
      weights: { count: summary.count, min: summary.min ?? NO_QUANTITY, max: summary.max ?? NO_QUANTITY },
    });
  }

  /** Filters, groups and accumulates one chunk. */
  visit(batch: ColumnBatch, chunk: ChunkInfo): void {
    const n0 = chunk.rowCount;
    if (n0 === 0) return;
    const sc = scratch;
    sc.ensureRows(n0);
    let sel = sc.identity;
    let n = n0;
    // Keeps the selected rows whose code the mask allows; false when none can match.
    const narrow = (col: DictColumn, m: { any: boolean; all: boolean; bits: Uint8Array }): boolean => {
      if (!m.any) return false;
      if (!m.all) {
        n =
          sel === sc.identity
            ? filterAllByMask(n, col.codes, m.bits, sc.sel)
            : filterByMask(sel, n, col.codes, m.bits, sc.sel);
        sel = sc.sel;
      }
      return true;
    };
    if (this.accountFilter !== null && chunk.accountFilter) {
      const col = batch.account_id as DictColumn;
      if (!narrow(col, this.accountFilter.maskFor(col.dict))) return;
    }
    for (let i = 0; i < this.dictFilters.length && n > 0; i++) {
      const f = this.dictFilters[i];
      const col = batch[f.column] as DictColumn;
      if (!narrow(col, f.maskFor(col.dict))) return;
    }
    if (this.kindMask !== null && n > 0) {
      n = filterKind(sel, n, batch.kind as Uint8Array, this.kindMask, sc.sel);
      sel = sc.sel;
    }
    if (this.dimFilter.length > 0 && n > 0) {
      const col = batch.dimensions as DictColumn;
      if (!narrow(col, this.dimMask(col.dict))) return;
    }
    if (chunk.timeFilter && n > 0) {
      n = filterTime(sel, n, batch.timestamp_ms as Float64Array, this.fromMs, this.toMs, sc.sel);
      sel = sc.sel;
    }
    if (n === 0) return;
    const weights = chunk.weights ?? null;
    if (this.keys.length === 0 && !this.needQuantity) {
      // A plain count: no per-row work at all.
      if (this.groupKeys.length === 0) this.groupKeys.push(0);
      this.acc.ensure(1);
      if (weights === null) this.acc.cnt[0] += n;
      else for (let j = 0; j < n; j++) this.acc.cnt[0] += weights.count[sel[j]];
      return;
    }
    const ctx = this.contextOf(batch);
    if (ctx !== null) {
      if (ctx.single) {
        const spec = this.keys[0] as { type: 'dict'; column: DictColumnName };
        this.accumulate(batch, sel, n, (batch[spec.column] as DictColumn).codes, ctx, weights);
      } else {
        if (this.keys.length > 0) this.contextKeys(batch, sel, n, ctx);
        this.accumulate(batch, sel, n, null, ctx, weights);
      }
      return;
    }
    // Key space beyond one number: chunk-local dense keys and a chunk-local table.
    this.computeKeys(batch, sel, n);
    this.accumulate(batch, sel, n, null, null, weights);
  }

  /**
   * The key context of a chunk: found by its dictionaries (a handful per query), made on first
   * sight; null when the key space does not fit one number (the chunk-local fallback).
   */
  private contextOf(batch: ColumnBatch): KeyContext | null {
    const keys = this.keys;
    // Found without allocating: this runs for every block.
    search: for (let i = 0; i < this.contexts.length; i++) {
      const c = this.contexts[i];
      for (let k = 0; k < keys.length; k++) {
        const d = this.dictOf(keys[k], batch);
        // A grown memtable dictionary changes the cards: that context no longer fits.
        if (c.dicts[k] !== d || (d !== null && d.length !== c.lengths[k])) continue search;
      }
      return c;
    }
    const dicts = keys.map((k) => this.dictOf(k, batch));
    const cards = keys.map((k, i) => {
      if (k.type === 'dict') return (dicts[i] as readonly string[]).length + 1;
      if (k.type === 'dim') return this.dimCodes(i, k.dimKey, dicts[i] as readonly string[]).values.length;
      if (k.type === 'kind') return KIND_NAMES.length;
      return this.timeCard[i];
    });
    const cap = cards.reduce((a, b) => a * b, 1);
    if (cap > KEY_SPACE_MAX) return null;
    const dense = cap <= CONTEXT_TABLE_MAX;
    const ctx: KeyContext = {
      dicts,
      lengths: dicts.map((d) => (d === null ? 0 : d.length)),
      cards,
      table: dense ? takeTable(cap) : null,
      used: [],
      idTables: dicts.map((d, k) => (d !== null && keys[k].type === 'dict' ? this.ids.codes(d) : null)),
      sparse: dense ? null : new Map(),
      single: keys.length === 1 && keys[0].type === 'dict',
      allDict: keys.every((k) => k.type === 'dict'),
    };
    this.contexts.push(ctx);
    return ctx;
  }

  private dictOf(k: KeySpec, batch: ColumnBatch): readonly string[] | null {
    if (k.type === 'dict') return (batch[k.column] as DictColumn).dict;
    return k.type === 'dim' ? (batch.dimensions as DictColumn).dict : null;
  }

  /** Composite keys with the context's fixed cards (stable across the context's chunks). */
  private contextKeys(batch: ColumnBatch, sel: Uint32Array, n: number, ctx: KeyContext): void {
    const keys = scratch.keys;
    if (ctx.allDict && this.keys.length <= 4) {
      // One pass for up to four dictionary keys (a billing line: product, meter, model, unit).
      const codes = this.keys.map(
        (k) => (batch[(k as { column: DictColumnName }).column] as DictColumn).codes,
      );
      addDictKeys(keys, sel, n, codes, ctx.cards);
      return;
    }
    for (let k = 0; k < this.keys.length; k++) {
      const spec = this.keys[k];
      const card = k === 0 ? 0 : ctx.cards[k];
      if (spec.type === 'dict') addDictKey(keys, sel, n, (batch[spec.column] as DictColumn).codes, card);
      else if (spec.type === 'kind') addKindKey(keys, sel, n, batch.kind as Uint8Array, card);
      else if (spec.type === 'dim') {
        const col = batch.dimensions as DictColumn;
        addMappedKey(keys, sel, n, col.codes, this.dimCodes(k, spec.dimKey, col.dict).local, card);
      } else
        addTimeKey(
          keys,
          sel,
          n,
          batch.timestamp_ms as Float64Array,
          spec.type === 'day' ? DAY_MS : HOUR_MS,
          this.timeBase[k],
          card,
        );
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

  /**
   * Adds the selected rows into the query groups. The key of a row is `(codes[row] + 1)` with
   * one dictionary key (`single`), else scratch.keys[j]; `table` or `sparse` maps it to a group.
   * Two passes, each a tight loop: resolve every row's group, then add.
   */
  private accumulate(
    batch: ColumnBatch,
    sel: Uint32Array,
    n: number,
    single: Uint32Array | null,
    ctx: KeyContext | null,
    weights: RowWeights | null,
  ): void {
    const groups = scratch.groups;
    const table = ctx === null ? null : ctx.table;
    if (this.keys.length === 0) {
      if (this.groupKeys.length === 0) this.groupFor(batch, sel[0], null);
      groups.fill(0, 0, n);
    } else if (table !== null) {
      // Tight loop until a key without a group; make it; go on from the next row.
      const keys = scratch.keys;
      let j = 0;
      while (j < n) {
        j =
          single !== null
            ? groupsBySingle(groups, sel, j, n, single, table)
            : groupsByKeys(groups, j, n, keys, table);
        if (j >= n) break;
        const key = single !== null ? (single[sel[j]] + 1) >>> 0 : keys[j] | 0;
        const g = this.groupFor(batch, sel[j], ctx);
        table[key] = g + 1;
        (ctx as KeyContext).used.push(key);
        groups[j++] = g;
      }
    } else {
      const keys = scratch.keys;
      // A context's sparse map, or a chunk-local one (the fallback beyond one number).
      const map = ctx?.sparse ?? new Map<number, number>();
      for (let j = 0; j < n; j++) {
        let g = map.get(keys[j]);
        if (g === undefined) {
          g = this.groupFor(batch, sel[j], ctx);
          map.set(keys[j], g);
        }
        groups[j] = g;
      }
    }
    const d = this.acc;
    d.ensure(this.groupKeys.length);
    const quantity = this.needQuantity ? (batch.quantity as QuantityColumn) : null;
    if (weights !== null) {
      addWeightedRows(d, groups, sel, n, quantity, weights, this.needMinMax);
      return;
    }
    if (quantity === null) {
      countRows(d.cnt, groups, n);
      return;
    }
    const slow = this.needMinMax
      ? addRowsMinMax(d, groups, sel, n, quantity.values)
      : addRows(d, groups, sel, n, quantity.values);
    // Rows the tight loop left out: quantities beyond 2^53 and sums leaving the safe range.
    if (slow) this.addSlowRows(d, groups, sel, n, quantity);
  }

  private addSlowRows(
    d: GroupAccumulators,
    groups: Int32Array,
    sel: Uint32Array,
    n: number,
    quantity: QuantityColumn,
  ): void {
    const { cnt, min, max } = d;
    const needMinMax = this.needMinMax;
    for (let j = 0; j < n; j++) {
      if (groups[j] >= 0) continue;
      const g = ~groups[j];
      const row = sel[j];
      const v = quantity.values[row];
      cnt[g]++;
      if (Number.isNaN(v)) {
        const q = quantity.big?.get(row);
        assert(q !== undefined, `quantity row ${row} is NaN without a big value`);
        d.addBig(g, q, needMinMax);
        continue;
      }
      d.spill(g, v);
      if (needMinMax) {
        if (v < min[g]) min[g] = v;
        if (v > max[g]) max[g] = v;
      }
    }
  }

  /** The query group of a row, by the engine-wide value ids of its keys; created on first sight. */
  private groupFor(batch: ColumnBatch, row: number, ctx: KeyContext | null): number {
    const keys = this.keys;
    // One number when every id fits its share of 52 bits (the usual case), else a string.
    const width = this.keyWidth;
    let numeric = 0;
    let fits = true;
    const ids = this.idScratch;
    for (let k = 0; k < keys.length; k++) {
      const spec = keys[k];
      // A context has the id table of each dictionary key at hand.
      const table = ctx === null ? null : ctx.idTables[k];
      const id =
        table !== null && spec.type === 'dict'
          ? table[((batch[spec.column] as DictColumn).codes[row] + 1) >>> 0]
          : this.valueId(k, batch, row);
      ids[k] = id;
      if (id < 0 || id >= width) fits = false;
      numeric = numeric * width + id;
    }
    const gk: number | string = fits ? numeric : ids.slice(0, keys.length).join('|');
    // One context's keys are distinct codes of its dictionaries, so distinct values: a new key
    // there is a new group. A second context (another file's dictionaries) may meet the same
    // values: from then on every group is found through the index.
    if (ctx !== null && (this.soleContext === undefined || this.soleContext === ctx)) {
      this.soleContext = ctx;
      return this.newGroup(gk, keys.length);
    }
    this.soleContext = null;
    for (; this.indexed < this.groupKeys.length; this.indexed++)
      this.groupIndex.set(this.groupKeys[this.indexed], this.indexed);
    let g = this.groupIndex.get(gk);
    if (g === undefined) {
      g = this.newGroup(gk, keys.length);
      this.groupIndex.set(gk, g);
      this.indexed++;
    }
    return g;
  }

  /** A group for the key values of idScratch (key `gk`). Its values are read when rows are made. */
  private newGroup(gk: number | string, keyCount: number): number {
    const g = this.groupKeys.length;
    if (g >= QUERY_GROUPS_MAX) throw tooManyGroups();
    for (let k = 0; k < keyCount; k++) this.groupIds.push(this.idScratch[k]);
    this.groupKeys.push(gk);
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

  /** The value of group key k whose value id is `id`. */
  private valueOfId(k: number, id: number): RowValue {
    const spec = this.keys[k];
    if (spec.type === 'kind') return KIND_NAMES[id];
    if (spec.type === 'day') return dayLabel(id);
    if (spec.type === 'hour') return hourLabel(id);
    return this.ids.values[id];
  }

  /** Number of groups so far. */
  get groupCount(): number {
    return this.groupKeys.length;
  }

  /** Value of group key k of group g. */
  keyValue(g: number, k: number): RowValue {
    return this.valueOfId(k, this.groupIds[g * this.keys.length + k]);
  }

  count(g: number): number {
    return this.acc.cnt[g];
  }

  sum(g: number): Quantity {
    return this.acc.sumOf(g);
  }

  min(g: number): Quantity | null {
    return this.acc.extremeOf(g, 'min');
  }

  max(g: number): Quantity | null {
    return this.acc.extremeOf(g, 'max');
  }

  /** Ends accumulation: gives the context tables back to the pool. */
  finish(): void {
    for (const c of this.contexts) {
      if (c.table !== null) giveTable(c.table, c.used);
      c.table = null;
    }
  }

  /** The finished groups as objects (unordered), for orderings by metric. */
  results(): ResultGroup[] {
    const out: ResultGroup[] = new Array<ResultGroup>(this.groupCount);
    for (let g = 0; g < out.length; g++) {
      const values: RowValue[] = [];
      for (let k = 0; k < this.keys.length; k++) values.push(this.keyValue(g, k));
      out[g] = {
        values,
        count: this.count(g),
        sum: this.sum(g),
        min: this.min(g),
        max: this.max(g),
        rank: 0,
        group: g,
      };
    }
    return out;
  }

  /** Sets each group's `rank` (see keyDigits); returns the rank space, 0 when not ranked. */
  rank(groups: readonly ResultGroup[]): number {
    if (groups.length !== this.groupCount) return 0;
    const keyed = this.keyDigits();
    if (keyed === null) return 0;
    const ranks = new Float64Array(groups.length);
    const space = combineRanks(ranks, keyed.digits, keyed.cards);
    for (let g = 0; g < groups.length; g++) groups[g].rank = ranks[g];
    return space;
  }

  /**
   * Each group's digit per key: digits[k][g] in [0, cards[k]), in the order of the key's
   * values (so the key tuples order as the digit tuples do); null when there are no keys or
   * a key's value ids span too much.
   */
  keyDigits(): { digits: Int32Array[]; cards: number[] } | null {
    const n = this.groupCount;
    if (this.keys.length === 0) return null;
    return this.contextDigits(n) ?? this.idDigits(n);
  }

  /**
   * Digits without comparing a value: when one key context made every group from dictionaries
   * in text order, codes order values, so the digits are the codes + 1 (null first) taken
   * from each group's context key (their mixed radix over the context's cards).
   */
  private contextDigits(n: number): { digits: Int32Array[]; cards: number[] } | null {
    const ctx = this.soleContext;
    if (ctx === undefined || ctx === null || !ctx.allDict || ctx.used.length !== n) return null;
    for (const d of ctx.dicts) if (d === null || !isSortedDict(d)) return null;
    const keyCount = ctx.cards.length;
    const digits = ctx.cards.map(() => new Int32Array(n));
    for (let g = 0; g < n; g++) {
      let key = ctx.used[g];
      for (let k = keyCount - 1; k >= 0; k--) {
        const card = ctx.cards[k];
        digits[k][g] = key % card;
        key = Math.floor(key / card);
      }
    }
    return { digits, cards: ctx.cards };
  }

  /**
   * Digits from the value ids: a value id stands for one value, so each key's distinct values
   * are found by number, in a table over the ids' span, and only they are compared as values.
   */
  private idDigits(n: number): { digits: Int32Array[]; cards: number[] } | null {
    const keyCount = this.keys.length;
    const ids = this.groupIds;
    const digits: Int32Array[] = [];
    const cards: number[] = [];
    for (let k = 0; k < keyCount; k++) {
      // Small integers throughout (no ±Infinity seeds): the loops below index typed arrays.
      let lo = ids[k] | 0;
      let hi = lo;
      for (let g = 1; g < n; g++) {
        const id = ids[g * keyCount + k] | 0;
        if (id < lo) lo = id;
        if (id > hi) hi = id;
      }
      // Ids are small integers (first-seen order, day and hour numbers): a table over their
      // span, shared between queries and left zeroed (distinct index + 1 while in use).
      if (hi - lo >= RANK_SPAN_MAX) return null;
      if (rankTable.length < hi - lo + 1)
        rankTable = new Int32Array(Math.max(hi - lo + 1, 2 * rankTable.length));
      const at = rankTable;
      const distinct: number[] = [];
      const slot = new Int32Array(n);
      for (let g = 0; g < n; g++) {
        const o = (ids[g * keyCount + k] - lo) | 0;
        if (at[o] === 0) {
          distinct.push(o + lo);
          at[o] = distinct.length;
        }
        slot[g] = at[o] - 1;
      }
      for (const id of distinct) at[id - lo] = 0;
      slotsToRanks(
        slot,
        distinct.map((id) => this.valueOfId(k, id)),
      );
      digits.push(slot);
      cards.push(distinct.length);
    }
    return { digits, cards };
  }
}

/** Chunks sharing these dictionaries share key numbers and their table. */
interface KeyContext {
  dicts: (readonly string[] | null)[];
  lengths: number[];
  cards: number[];
  /** Key -> query group + 1 (0: none yet); pooled, see takeTable. */
  table: Int32Array | null;
  /** Keys set in `table` (to zero them when it goes back to the pool). */
  used: number[];
  /** Per dictionary key: value ids by code + 1 (null for other keys). */
  idTables: (Int32Array | null)[];
  sparse: Map<number, number> | null;
  /** One dictionary key: the key is the code + 1 itself (no key pass). */
  single: boolean;
  allDict: boolean;
}

/** groups[j] = table[codes[sel[j]] + 1] - 1 from j = `from`; returns the first j without a group, or n. */
function groupsBySingle(
  groups: Int32Array,
  sel: Uint32Array,
  from: number,
  n: number,
  codes: Uint32Array,
  table: Int32Array,
): number {
  for (let j = from; j < n; j++) {
    const g = table[(codes[sel[j]] + 1) >>> 0] - 1;
    if (g < 0) return j;
    groups[j] = g;
  }
  return n;
}

function groupsByKeys(
  groups: Int32Array,
  from: number,
  n: number,
  keys: Float64Array,
  table: Int32Array,
): number {
  for (let j = from; j < n; j++) {
    // `| 0`: an int32 index keeps the typed-array access on V8's fast path.
    const g = table[keys[j] | 0] - 1;
    if (g < 0) return j;
    groups[j] = g;
  }
  return n;
}

function countRows(cnt: Float64Array, groups: Int32Array, n: number): void {
  for (let j = 0; j < n; j++) cnt[groups[j]]++;
}

/**
 * cnt/sum for rows whose quantity is a number and whose sum stays safe; every other row is
 * marked (groups[j] = ~g) for addSlowRows. Returns whether any was.
 */
function addRows(
  d: GroupAccumulators,
  groups: Int32Array,
  sel: Uint32Array,
  n: number,
  values: Float64Array,
): boolean {
  const { cnt, sum } = d;
  let slow = false;
  for (let j = 0; j < n; j++) {
    const g = groups[j];
    const t = sum[g] + values[sel[j]];
    // NaN (a quantity beyond 2^53) fails both comparisons too.
    if (t <= SAFE_MAX && t >= -SAFE_MAX) {
      sum[g] = t;
      cnt[g]++;
    } else {
      groups[j] = ~g;
      slow = true;
    }
  }
  return slow;
}

function addRowsMinMax(
  d: GroupAccumulators,
  groups: Int32Array,
  sel: Uint32Array,
  n: number,
  values: Float64Array,
): boolean {
  const { cnt, sum, min, max } = d;
  let slow = false;
  for (let j = 0; j < n; j++) {
    const g = groups[j];
    const v = values[sel[j]];
    const t = sum[g] + v;
    if (t <= SAFE_MAX && t >= -SAFE_MAX) {
      sum[g] = t;
      cnt[g]++;
      if (v < min[g]) min[g] = v;
      if (v > max[g]) max[g] = v;
    } else {
      groups[j] = ~g;
      slow = true;
    }
  }
  return slow;
}

/** Rollup rows: counts, sums (a sum may be beyond 2^53) and min/max from the row's columns. */
function addWeightedRows(
  d: GroupAccumulators,
  groups: Int32Array,
  sel: Uint32Array,
  n: number,
  sums: QuantityColumn | null,
  weights: RowWeights,
  needMinMax: boolean,
): void {
  const { cnt, sum, min, max } = d;
  // Columns taken once: a rollup block's columns are getters (decoded on first access).
  const count = weights.count;
  const values = sums === null ? null : sums.values;
  const extremes = needMinMax ? [weights.min, weights.max] : [];
  for (let j = 0; j < n; j++) {
    const g = groups[j];
    const row = sel[j];
    cnt[g] += count[row];
    if (values === null) continue;
    const v = values[row];
    if (Number.isNaN(v)) {
      const q = (sums as QuantityColumn).big?.get(row);
      assert(q !== undefined, `rollup sum row ${row} is NaN without a big value`);
      d.sumBig ??= new Map();
      d.sumBig.set(g, (d.sumBig.get(g) ?? 0n) + q);
    } else {
      const t = sum[g] + v;
      if (t <= SAFE_MAX && t >= -SAFE_MAX) sum[g] = t;
      else d.spill(g, v);
    }
    for (let e = 0; e < extremes.length; e++) {
      const col = extremes[e];
      const m = col.values[row];
      if (Number.isNaN(m)) {
        const q = col.big?.get(row);
        assert(q !== undefined, `rollup min/max row ${row} is NaN without a big value`);
        d.minMaxBig(g, q);
      } else {
        if (m < min[g]) min[g] = m;
        if (m > max[g]) max[g] = m;
      }
    }
  }
}

function tooManyGroups(): UsageDbError {
  return new UsageDbError(
    'USAGEDB_ERR_INVALID_QUERY',
    `the query produces more than ${QUERY_GROUPS_MAX} groups; narrow its range or group_by`,
  );
}
