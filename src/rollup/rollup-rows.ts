/**
 * Rollup rows: the events of one raw segment summed per grain and time bucket.
 *
 * Grain (docs/rollups.md): account_id, subscription_id, product_id, meter_id, model_id, unit,
 * kind, source and the bucket (hour, day or month). Dimensions are not in the grain (on the
 * bench workload they make the hour level as large as the raw data): a query that groups or
 * filters by a dimension is answered from raw events.
 *
 * The hour level is summed from raw rows; the day level from hour rows and the month level
 * from day rows (sums, counts, min/max and first/last all compose), so each coarser level
 * costs only as much as the level below it.
 *
 * Invariants:
 * - per grain key and bucket, the rows' counts add up to the number of events and their sums
 *   to the exact sum of quantities; a group whose sum would leave ±(10^38 − 1) (what a segment
 *   stores) continues in a new row of the same key, so several rows may share a key;
 * - rows are sorted by account_id (text order): readers find one account's rows by block
 *   bounds and binary search;
 * - the columns `timestamp_ms` (the bucket start) and `quantity` (the sum) make a row readable
 *   as an event batch by the query engine, with `count`, `min` and `max` as its weights.
 */
import { assert } from '../errors.ts';
import {
  DICT_COLUMN_NAMES,
  type DictColumn,
  type DictColumnName,
  type EventColumns,
  NULL_CODE,
  type QuantityColumn,
  quantityBigAt,
} from '../model/columns.ts';
import { BIG_ABS_MAX } from '../storage/encoding/varint.ts';
import type { RollupBucket, RollupLevel } from '../storage/manifest.ts';
import type { RollupBatch } from '../query/types.ts';
import { bucketOf, bucketStart, DAY_MS, HOUR_MS, METER_GRAIN_COLUMNS } from './levels.ts';

/**
 * The grain's dictionary columns: every dictionary column of an event but `dimensions`, in the
 * persisted order of DICT_COLUMN_NAMES (the rollup file stores their chunks in this order).
 */
export type RollupDictColumn = Exclude<DictColumnName, 'dimensions'>;
export const ROLLUP_DICT_COLUMNS: readonly RollupDictColumn[] = DICT_COLUMN_NAMES.filter(
  (name): name is RollupDictColumn => name !== 'dimensions',
);

/** The raw columns a rollup build reads. */
export const ROLLUP_SOURCE_COLUMNS = [...ROLLUP_DICT_COLUMNS, 'kind', 'timestamp_ms', 'quantity'] as const;

/**
 * Rollup rows as columns: the grain's dictionary columns, `kind`, the bucket start as
 * `timestamp_ms`, the sum as `quantity`, `count` (exact number of events), `min`, `max` and
 * the first/last event time (`first_ts`, `last_ts`).
 */
export type RollupRows = RollupBatch;

const SAFE_MAX = Number.MAX_SAFE_INTEGER;
/** The shortest month: a time within this of a month's start lies in that month. */
const MONTH_MS_MIN = 28 * 86_400_000;

/** One row's contribution: what an input (a raw event or a finer rollup row) adds to a group. */
interface Input {
  rowCount: number;
  /** Line (grain without time) of each input row. */
  line: Int32Array;
  timestamp: Float64Array;
  count: Float64Array | null;
  sum: QuantityColumn;
  min: QuantityColumn;
  max: QuantityColumn;
  first: Float64Array;
  last: Float64Array;
}

/** Rows of input whose groups a thread keeps for the next set (Groups.acquire): ~20 MB. */
const GROUPS_REUSE_ROWS_MAX = 300_000;
let reusableGroups: Groups | null = null;

/** Forgets the groups this thread keeps for its next set. */
export function releaseReusableGroups(): void {
  reusableGroups = null;
}

/** Groups as parallel arrays (hundreds of thousands per build: no object per group). */
class Groups {
  n = 0;
  line: Int32Array;
  bucket: Float64Array;
  count: Float64Array;
  sum: Float64Array;
  min: Float64Array;
  max: Float64Array;
  first: Float64Array;
  last: Float64Array;
  /** 1: the group's sum, min and max are exact in the maps below (a value beyond 2^53 met it). */
  hasBig: Uint8Array;
  bigSum = new Map<number, bigint>();
  bigMin = new Map<number, bigint>();
  bigMax = new Map<number, bigint>();

  /** `capacity`: the input's row count, a bound on its groups but for split sums (rare). */
  constructor(capacity: number) {
    const size = Math.max(16, capacity);
    this.line = new Int32Array(size);
    this.bucket = new Float64Array(size);
    this.count = new Float64Array(size);
    this.sum = new Float64Array(size);
    this.min = new Float64Array(size);
    this.max = new Float64Array(size);
    this.first = new Float64Array(size);
    this.last = new Float64Array(size);
    this.hasBig = new Uint8Array(size);
  }

  /**
   * Empty groups for an input of `capacity` rows: this thread's previous ones, reset, when
   * large enough (each level of each build needs a set, dead once toRows copied it out: reusing
   * it spares the garbage collector tens of MB per build), else new ones, kept for next time
   * up to GROUPS_REUSE_ROWS_MAX.
   */
  static acquire(capacity: number): Groups {
    const kept = reusableGroups;
    if (kept !== null && kept.line.length >= capacity) {
      kept.n = 0;
      kept.bigSum.clear();
      kept.bigMin.clear();
      kept.bigMax.clear();
      return kept;
    }
    const fresh = new Groups(capacity);
    reusableGroups = capacity <= GROUPS_REUSE_ROWS_MAX ? fresh : null;
    return fresh;
  }

  /** Whether this thread keeps these groups for its next set (acquire): their arrays are not the caller's. */
  kept(): boolean {
    return reusableGroups === this;
  }

  add(line: number, bucket: number): number {
    if (this.n === this.line.length) this.grow();
    const g = this.n++;
    this.line[g] = line;
    this.bucket[g] = bucket;
    this.count[g] = 0;
    this.sum[g] = 0;
    this.hasBig[g] = 0;
    this.min[g] = Number.POSITIVE_INFINITY;
    this.max[g] = Number.NEGATIVE_INFINITY;
    this.first[g] = Number.POSITIVE_INFINITY;
    this.last[g] = Number.NEGATIVE_INFINITY;
    return g;
  }

  private grow(): void {
    const size = this.line.length * 2;
    const f = (a: Float64Array) => {
      const b = new Float64Array(size);
      b.set(a);
      return b;
    };
    const l = new Int32Array(size);
    l.set(this.line);
    this.line = l;
    const h = new Uint8Array(size);
    h.set(this.hasBig);
    this.hasBig = h;
    this.bucket = f(this.bucket);
    this.count = f(this.count);
    this.sum = f(this.sum);
    this.min = f(this.min);
    this.max = f(this.max);
    this.first = f(this.first);
    this.last = f(this.last);
  }

  /** Adds input row `r` to group `g`; false (nothing changed) when the sum would leave ±(10^38 − 1). */
  addRow(g: number, input: Input, r: number): boolean {
    // The usual case, without a BigInt or a map: safe sum, safe min/max.
    const v = input.sum.values[r];
    const mn = input.min.values[r];
    const mx = input.max.values[r];
    if (this.hasBig[g] === 0 && v === v && mn === mn && mx === mx) {
      const t = this.sum[g] + v;
      if (t <= SAFE_MAX && t >= -SAFE_MAX) {
        this.sum[g] = t;
        this.count[g] += input.count === null ? 1 : input.count[r];
        if (mn < this.min[g]) this.min[g] = mn;
        if (mx > this.max[g]) this.max[g] = mx;
        if (input.first[r] < this.first[g]) this.first[g] = input.first[r];
        if (input.last[r] > this.last[g]) this.last[g] = input.last[r];
        return true;
      }
    }
    return this.addRowExact(g, input, r);
  }

  /** addRow with BigInt values (a sum, min or max beyond 2^53 somewhere in the group). */
  private addRowExact(g: number, input: Input, r: number): boolean {
    const sum = (this.bigSum.get(g) ?? BigInt(this.sum[g])) + quantityBigAt(input.sum, r);
    if (sum > BIG_ABS_MAX || sum < -BIG_ABS_MAX) return false;
    if (this.hasBig[g] === 0) {
      // From now on this group's sum, min and max live in the maps.
      this.hasBig[g] = 1;
      if (Number.isFinite(this.min[g])) this.bigMin.set(g, BigInt(this.min[g]));
      if (Number.isFinite(this.max[g])) this.bigMax.set(g, BigInt(this.max[g]));
    }
    this.bigSum.set(g, sum);
    this.count[g] += input.count === null ? 1 : input.count[r];
    const mn = quantityBigAt(input.min, r);
    const mx = quantityBigAt(input.max, r);
    const curMin = this.bigMin.get(g);
    const curMax = this.bigMax.get(g);
    if (curMin === undefined || mn < curMin) this.bigMin.set(g, mn);
    if (curMax === undefined || mx > curMax) this.bigMax.set(g, mx);
    if (input.first[r] < this.first[g]) this.first[g] = input.first[r];
    if (input.last[r] > this.last[g]) this.last[g] = input.last[r];
    return true;
  }

  /** The group's exact quantity of `which` (sum, min or max), as a column value. */
  put(col: QuantityColumn, i: number, g: number, which: 'sum' | 'min' | 'max'): void {
    const big =
      this.hasBig[g] === 0
        ? undefined
        : (which === 'sum' ? this.bigSum : which === 'min' ? this.bigMin : this.bigMax).get(g);
    if (big === undefined) {
      col.values[i] = this[which][g];
      return;
    }
    if (big >= -BigInt(SAFE_MAX) && big <= BigInt(SAFE_MAX)) {
      col.values[i] = Number(big);
      return;
    }
    col.values[i] = Number.NaN;
    col.big ??= new Map();
    col.big.set(i, big);
  }
}

/**
 * The slot of an open-addressing table (`mask`: its size − 1) a non-negative integer below 2^53
 * hashes to: both halves of it mixed (keys such as line × span + bucket cluster in their low
 * bits alone).
 */
export function slotOf(key: number, mask: number): number {
  const h = Math.imul((key | 0) ^ Math.floor(key / 4294967296), 0x9e3779b1);
  return (h ^ (h >>> 16)) & mask;
}

/**
 * Non-negative integer keys (< 2^53) -> group, open addressing over typed arrays: the build
 * looks up a key for most input rows, and a Map of numbers costs several times more.
 */
class KeyTable {
  private keys: Float64Array;
  private values: Int32Array;
  private mask: number;
  private size = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private slot(key: number): number {
    return slotOf(key, this.mask);
  }

  get(key: number): number | undefined {
    const keys = this.keys;
    for (let i = this.slot(key); ; i = (i + 1) & this.mask) {
      const k = keys[i];
      if (k === key) return this.values[i];
      if (k === -1) return undefined;
    }
  }

  set(key: number, value: number): void {
    if ((this.size + 1) * 2 > this.keys.length) this.grow();
    const keys = this.keys;
    for (let i = this.slot(key); ; i = (i + 1) & this.mask) {
      const k = keys[i];
      if (k === key) {
        this.values[i] = value;
        return;
      }
      if (k === -1) {
        keys[i] = key;
        this.values[i] = value;
        this.size++;
        return;
      }
    }
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    this.keys = new Float64Array(oldKeys.length * 2).fill(-1);
    this.values = new Int32Array(oldKeys.length * 2);
    this.mask = this.keys.length - 1;
    this.size = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== -1) this.set(oldKeys[i], oldValues[i]);
  }
}

/**
 * Sums `input` per (line, bucket of `level`). `ordered`: the input's rows are likely in time
 * order within each line, or nearly (a raw segment's sort and the rows built from it; rows of
 * segments flushed one after another, a few late), so a group is found from its line's newest
 * group, stepping back a few groups for a late row, without a hash lookup. A row further back
 * than that sends the whole input through the hashed path instead.
 */
function groupInput(input: Input, level: RollupLevel, ordered: boolean): Groups {
  if (ordered) {
    const groups = groupByLine(input, level);
    if (groups !== null) return groups;
  }
  return groupHashed(input, level);
}

/**
 * bucketStart for integer times: a division and a floor instead of two float remainders (the
 * quotient of an integer below 2^53 never rounds up across a bucket boundary).
 */
function fastBucketStart(bucket: RollupBucket, ts: number, prev = Number.NaN): number {
  if (bucket === 'hour') return Math.floor(ts / HOUR_MS) * HOUR_MS;
  if (bucket === 'day') return Math.floor(ts / DAY_MS) * DAY_MS;
  // Rows mostly come in time order: a month start is reused while ts stays inside it.
  if (bucket === 'month' && ts >= prev && ts < prev + MONTH_MS_MIN) return prev;
  return bucketStart(bucket, ts);
}

/** One more than the largest of the first `n` line ids (a loop of its own: see toRows). */
function lineCount(line: Int32Array, n: number): number {
  let lines = 0;
  for (let r = 0; r < n; r++) if (line[r] >= lines) lines = line[r] + 1;
  return lines;
}

/** Groups a late row may step back over in groupByLine before it gives up. */
const LATE_STEPS_MAX = 8;

/**
 * groupInput along each line's groups, newest first (a chain by bucket, descending); null
 * when a row lies more than LATE_STEPS_MAX groups back.
 */
function groupByLine(input: Input, level: RollupLevel): Groups | null {
  const bucket = bucketOf(level);
  const n = input.rowCount;
  const head = new Int32Array(lineCount(input.line, n)).fill(-1);
  /** Per group: the next older group of its line, -1 at the end. */
  let older = new Int32Array(Math.max(16, n));
  const groups = Groups.acquire(n);
  const insert = (line: number, b: number, before: number, after: number): number => {
    const g = groups.add(line, b);
    if (g === older.length) {
      const grown = new Int32Array(g * 2);
      grown.set(older);
      older = grown;
    }
    older[g] = after;
    if (before < 0) head[line] = g;
    else older[before] = g;
    return g;
  };
  let prevBucket = Number.NaN;
  for (let r = 0; r < n; r++) {
    const ts = input.timestamp[r];
    const line = input.line[r];
    const b = fastBucketStart(bucket, ts, prevBucket);
    prevBucket = b;
    let g = head[line];
    let before = -1;
    for (let steps = 0; g >= 0 && groups.bucket[g] > b; steps++) {
      if (steps === LATE_STEPS_MAX) return null;
      before = g;
      g = older[g];
    }
    if (g < 0 || groups.bucket[g] !== b) g = insert(line, b, before, g);
    if (!groups.addRow(g, input, r)) {
      // The sum would leave what a row stores: the key goes on in a new row, found first.
      g = insert(line, b, before, g);
      assert(groups.addRow(g, input, r), 'one quantity fits a rollup row');
    }
  }
  return groups;
}

/** Cells of a dense (line, bucket) table groupHashed uses instead of hashing, at most. */
const DENSE_CELLS_MAX = 1 << 22;

/**
 * groupInput in any row order: groups found by (line, bucket) in a table indexed by both when
 * lines × buckets is small (the meter lines of a few weeks' day rows), else in a hash table.
 */
function groupHashed(input: Input, level: RollupLevel): Groups {
  const bucket = bucketOf(level);
  if (bucket !== 'month') {
    const groups = groupDense(input, bucket === 'hour' ? HOUR_MS : DAY_MS);
    if (groups !== null) return groups;
  }
  const groups = Groups.acquire(input.rowCount);
  const byKey = new KeyTable(input.rowCount);
  // Keys line * span + hour slot stay small integers (fast map keys) for a segment of a
  // month or so; a wider one still gets exact (double) keys.
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let r = 0; r < input.rowCount; r++) {
    const ts = input.timestamp[r];
    if (ts < lo) lo = ts;
    if (ts > hi) hi = ts;
  }
  const base = bucketStart('hour', bucketStart(bucket, lo));
  const span = Math.floor((hi - base) / HOUR_MS) + 1;
  assert(span * (input.rowCount + 1) < 2 ** 53, 'rollup group keys exceed 2^53');
  const keyOf = (line: number, bucket: number) => line * span + (bucket - base) / HOUR_MS;
  let prevLine = -1;
  let prevBucket = Number.NaN;
  let prevGroup = -1;
  for (let r = 0; r < input.rowCount; r++) {
    const ts = input.timestamp[r];
    const line = input.line[r];
    const b = fastBucketStart(bucket, ts, prevBucket);
    let g: number;
    if (line === prevLine && b === prevBucket) g = prevGroup;
    else {
      const key = keyOf(line, b);
      const found = byKey.get(key);
      if (found === undefined) {
        g = groups.add(line, b);
        byKey.set(key, g);
      } else g = found;
    }
    if (!groups.addRow(g, input, r)) {
      // The sum would leave what a row stores: the key goes on in a new row.
      g = groups.add(line, b);
      byKey.set(keyOf(line, b), g);
      assert(groups.addRow(g, input, r), 'one quantity fits a rollup row');
    }
    prevLine = line;
    prevBucket = b;
    prevGroup = g;
  }
  return groups;
}

/**
 * groupHashed for buckets of a fixed `width` through a table of every (line, bucket) cell;
 * null when that table would exceed DENSE_CELLS_MAX cells or 2 per input row. Groups come in
 * the same order, with the same split rows, as through the hash table.
 */
function groupDense(input: Input, width: number): Groups | null {
  const n = input.rowCount;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  let lines = 0;
  for (let r = 0; r < n; r++) {
    const ts = input.timestamp[r];
    if (ts < lo) lo = ts;
    if (ts > hi) hi = ts;
    if (input.line[r] >= lines) lines = input.line[r] + 1;
  }
  const base = Math.floor(lo / width) * width;
  const span = Math.floor((hi - base) / width) + 1;
  const cells = lines * span;
  if (!(cells <= DENSE_CELLS_MAX && cells <= 2 * n)) return null;
  const cell = new Int32Array(cells).fill(-1);
  const groups = Groups.acquire(n);
  for (let r = 0; r < n; r++) {
    const line = input.line[r];
    const slot = Math.floor((input.timestamp[r] - base) / width);
    const at = line * span + slot;
    let g = cell[at];
    if (g < 0) {
      g = groups.add(line, base + slot * width);
      cell[at] = g;
    }
    if (!groups.addRow(g, input, r)) {
      // The sum would leave what a row stores: the key goes on in a new row.
      g = groups.add(line, base + slot * width);
      cell[at] = g;
      assert(groups.addRow(g, input, r), 'one quantity fits a rollup row');
    }
  }
  return groups;
}

/** The grain's columns (raw events or rollup rows): what lines and output rows are made of. */
type GrainColumns = Pick<EventColumns, RollupDictColumn | 'kind' | 'rowCount'>;

/**
 * One set of rows of `level` from several rollup files of that level (each covering other raw
 * segments): rows of the same grain key and bucket are summed, exactly as the files' raw
 * events would have been.
 */
export function mergeRollupRows(
  parts: readonly RollupRows[],
  level: RollupLevel,
  ordered = true,
): RollupRows {
  const { c, lines, input } = mergedInput(parts);
  return levelsFrom(c, lines, input, [level], ordered).get(level) as RollupRows;
}

/**
 * The day rows of several raw segments (in segment order) summed into one set, and the month,
 * meter_day and meter_month rows derived from it as a build derives them from one segment's
 * day rows: each coarser level costs what the merged day rows cost, not what every segment's
 * own rows of that level would.
 */
export function combineDayRows(parts: readonly RollupRows[]): Map<RollupLevel, RollupRows> {
  const { c, lines, input } = mergedInput(parts);
  const built = levelsWithLines(c, lines, input, ['day', 'month'], true);
  const out = built.rows;
  const meter = meterLevels(built.grain, out.get('day') as RollupRows, built.lines.get('day') as Int32Array);
  out.set('meter_day', meter.meterDay);
  out.set('meter_month', meter.meterMonth);
  return out;
}

/**
 * One dictionary per column for several row sets (values in first-seen order over the sets'
 * dictionaries, in order; `sorted`: in text order, as rollup files store them), and per set
 * the map of its codes into it.
 */
export function sharedDictionaries(
  sets: readonly RollupRows[],
  sorted = false,
): {
  dicts: Record<RollupDictColumn, string[]>;
  maps: Record<RollupDictColumn, Uint32Array>[];
} {
  const dicts = {} as Record<RollupDictColumn, string[]>;
  const maps = sets.map(() => ({}) as Record<RollupDictColumn, Uint32Array>);
  for (const name of ROLLUP_DICT_COLUMNS) {
    const dict: string[] = [];
    const index = new Map<string, number>();
    sets.forEach((s, k) => {
      const values = s[name].dict;
      const map = new Uint32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        let c = index.get(values[i]);
        if (c === undefined) {
          c = dict.length;
          dict.push(values[i]);
          index.set(values[i], c);
        }
        map[i] = c;
      }
      maps[k][name] = map;
    });
    dicts[name] = sorted ? sortDictionary(dict, maps, name) : dict;
  }
  return { dicts, maps };
}

/** `dict` in text order (as rollup files store it), each set's map of `name` renumbered. */
function sortDictionary(
  dict: readonly string[],
  maps: Record<RollupDictColumn, Uint32Array>[],
  name: RollupDictColumn,
): string[] {
  const order = textOrder(dict);
  if (order === null) return [...dict];
  const newCode = ranksOf(order);
  for (const m of maps) {
    const map = m[name];
    for (let i = 0; i < map.length; i++) map[i] = newCode[map[i]];
  }
  return Array.from(order, (c) => dict[c]);
}

/** The codes of `dict` (distinct values) in text order of their values; null when code order is. */
export function textOrder(dict: readonly string[]): Int32Array | null {
  let sorted = true;
  for (let c = 1; c < dict.length && sorted; c++) sorted = dict[c - 1] < dict[c];
  return sorted ? null : Int32Array.from(dict.keys()).sort((a, b) => (dict[a] < dict[b] ? -1 : 1));
}

/** Each code's position in `order` (a permutation of the codes): its new code. */
export function ranksOf(order: Int32Array): Int32Array {
  const rank = new Int32Array(order.length);
  for (let i = 0; i < order.length; i++) rank[order[i]] = i;
  return rank;
}

/** Each code's rank in text order of the values of `dict`. */
function textRanks(dict: readonly string[]): Int32Array {
  const order = textOrder(dict);
  return order === null ? Int32Array.from(dict.keys()) : ranksOf(order);
}

/**
 * The dictionary columns of several row sets, one after another (`n` rows in all), over one
 * dictionary per column (sharedDictionaries): each set's codes mapped into it.
 */
function commonDictColumns(sets: readonly RollupRows[], n: number): Record<RollupDictColumn, DictColumn> {
  const shared = sharedDictionaries(sets);
  const dictCols = {} as Record<RollupDictColumn, DictColumn>;
  for (const name of ROLLUP_DICT_COLUMNS) {
    const codes = new Uint32Array(n);
    let at = 0;
    sets.forEach((s, k) => {
      at = remapCodesInto(codes, at, s[name].codes, s.rowCount, shared.maps[k][name]);
    });
    dictCols[name] = { dict: shared.dicts[name], codes };
  }
  return dictCols;
}

/**
 * Several parts' rows as one input: dictionaries made common, lines numbered over all, rows
 * taken account by account (text order) and, within an account, part by part in order. Each
 * line's rows then stay in time order as they were across parts, and its groups are made and
 * summed close together, in account order: concatenated part after part instead, every row
 * reached groups made a whole part earlier (a cache miss per group array), and the groups had to
 * be gathered into account order afterwards (toRows).
 */
function mergedInput(parts: readonly RollupRows[]): { c: GrainColumns; lines: LineIds; input: Input } {
  const n = parts.reduce((a, p) => a + p.rowCount, 0);
  const shared = sharedDictionaries(parts);
  const runs = accountRuns(
    parts,
    shared.dicts.account_id,
    shared.maps.map((m) => m.account_id),
  );
  const dictCols = {} as Record<RollupDictColumn, DictColumn>;
  for (const name of ROLLUP_DICT_COLUMNS) {
    const codes = new Uint32Array(n);
    const maps = shared.maps.map((m) => m[name]);
    runs.forEach((at, run) =>
      remapCodesInto(
        codes,
        at,
        parts[run.part][name].codes.subarray(run.start, run.end),
        run.end - run.start,
        maps[run.part],
      ),
    );
    dictCols[name] = { dict: shared.dicts[name], codes };
  }
  const kind = new Uint8Array(n);
  runs.forEach((at, run) => kind.set(parts[run.part].kind.subarray(run.start, run.end), at));
  const f64 = (pick: (p: RollupRows) => Float64Array) => {
    const out = new Float64Array(n);
    runs.forEach((at, run) => out.set(pick(parts[run.part]).subarray(run.start, run.end), at));
    return out;
  };
  const quantities = (pick: (p: RollupRows) => QuantityColumn): QuantityColumn => {
    let big: Map<number, bigint> | null = null;
    runs.forEach((at, run) => {
      const b = pick(parts[run.part]).big;
      if (b !== null)
        for (const [row, v] of b)
          if (row >= run.start && row < run.end) (big ??= new Map()).set(at + row - run.start, v);
    });
    return { values: f64((p) => pick(p).values), big };
  };
  const c: GrainColumns = { rowCount: n, kind, ...dictCols };
  const lines = lineIds(c);
  const input: Input = {
    rowCount: n,
    line: lines.ids,
    timestamp: f64((p) => p.timestamp_ms),
    count: f64((p) => p.count),
    sum: quantities((p) => p.quantity),
    min: quantities((p) => p.min),
    max: quantities((p) => p.max),
    first: f64((p) => p.first_ts),
    last: f64((p) => p.last_ts),
  };
  return { c, lines, input };
}

/** Rows [start, end) of part `part`, all of one account. */
interface AccountRun {
  part: number;
  start: number;
  end: number;
}

/**
 * The parts' runs of rows of one account, ordered by account (text order), then part: the order
 * mergedInput takes rows in. Maps: each part's account codes into `accounts`, the common
 * dictionary. Returned as a Map from each run to the merged position of its first row.
 */
function accountRuns(
  parts: readonly RollupRows[],
  accounts: readonly string[],
  maps: readonly Uint32Array[],
): Map<AccountRun, number> {
  const rank = textRanks(accounts);
  // Runs bucketed by account rank, each bucket filled part by part: already in merged order.
  const byRank: AccountRun[][] = Array.from({ length: accounts.length + 1 }, () => []);
  parts.forEach((p, part) => {
    const codes = p.account_id.codes;
    for (let start = 0; start < p.rowCount;) {
      const end = runEnd(codes, start, p.rowCount);
      const code = codes[start];
      byRank[code === NULL_CODE ? accounts.length : rank[maps[part][code]]].push({ part, start, end });
      start = end;
    }
  });
  const at = new Map<AccountRun, number>();
  let next = 0;
  for (const bucket of byRank)
    for (const run of bucket) {
      at.set(run, next);
      next += run.end - run.start;
    }
  return at;
}

/**
 * The end of the run of values equal to `values[i]` (before `n`). A function of its own (see
 * remapCodesInto): as an inner loop of the rollup file's smallIntsChunk, compiled on the stack,
 * it sent that function back to the interpreter at every run's end, about 500 times over a
 * 1M-event build.
 */
export function runEnd(values: Uint8Array | Uint32Array, i: number, n = values.length): number {
  const v = values[i];
  let j = i + 1;
  while (j < n && values[j] === v) j++;
  return j;
}

/**
 * `count` codes of `from` through `remap` (null stays null) into `out` at `at`; returns the
 * position after them. Loops nested in loops over columns and parts live in small functions:
 * an inner loop V8 compiles while it runs deoptimizes its function at every exit otherwise.
 */
function remapCodesInto(
  out: Uint32Array,
  at: number,
  from: Uint32Array,
  count: number,
  remap: Uint32Array,
): number {
  for (let i = 0; i < count; i++) {
    const code = from[i];
    out[at++] = code === NULL_CODE ? NULL_CODE : remap[code];
  }
  return at;
}

/** Per raw row, the id of its grain line (everything but time), numbered in first-seen order. */
export interface LineIds {
  ids: Int32Array;
  /** A raw row holding each line. */
  firstRow: Int32Array;
}

export function lineIds(c: GrainColumns): LineIds {
  const n = c.rowCount;
  const ids = new Int32Array(n);
  let firstRow = new Int32Array(64);
  let lines = 0;
  const cols = ROLLUP_DICT_COLUMNS.map((name) => c[name].codes);
  // A line as one number (mixed radix of its codes and kind) when that fits 2^53, else text.
  const cards = ROLLUP_DICT_COLUMNS.map((name) => c[name].dict.length + 1);
  const numeric = cards.reduce((a, b) => a * b, 3) < 2 ** 53;
  const byNumber = new KeyTable(1024);
  const byText = new Map<string, number>();
  let prev = -1;
  for (let row = 0; row < n; row++) {
    // Neighbours (sorted by account, product, meter, model) usually share their line.
    if (prev >= 0 && c.kind[row] === c.kind[prev] && sameCodes(cols, row, prev)) {
      ids[row] = ids[prev];
      prev = row;
      continue;
    }
    let id: number | undefined;
    if (numeric) {
      let key = c.kind[row];
      // Codes + 1, so a null (NULL_CODE) becomes 0.
      for (let k = 0; k < cols.length; k++) key = key * cards[k] + ((cols[k][row] + 1) >>> 0);
      id = byNumber.get(key);
      if (id === undefined) {
        id = lines;
        byNumber.set(key, id);
      }
    } else {
      let key = String(c.kind[row]);
      for (let k = 0; k < cols.length; k++) key += `,${cols[k][row]}`;
      id = byText.get(key);
      if (id === undefined) {
        id = lines;
        byText.set(key, id);
      }
    }
    if (id === lines) {
      if (lines === firstRow.length) {
        const grown = new Int32Array(lines * 2);
        grown.set(firstRow);
        firstRow = grown;
      }
      firstRow[lines++] = row;
    }
    ids[row] = id;
    prev = row;
  }
  return { ids, firstRow: firstRow.slice(0, lines) };
}

function sameCodes(cols: readonly Uint32Array[], a: number, b: number): boolean {
  for (let k = 0; k < cols.length; k++) if (cols[k][a] !== cols[k][b]) return false;
  return true;
}

/** Milliseconds spent per build phase, added to (bench/rollup-build.ts). */
export interface BuildPhases {
  readMs: number;
  linesMs: number;
  hourMs: number;
  dayMonthMs: number;
  rowsMs: number;
  /** The meter-grain levels, from the day rows. */
  meterMs: number;
}

/**
 * Rollup rows of every level for one segment's decoded rollup source columns; `hourAndDay`:
 * only those two (the others then come from several segments' day rows: combineDayRows).
 */
export function buildRollupLevels(
  c: EventColumns,
  phases?: BuildPhases,
  hourAndDay = false,
): Map<RollupLevel, RollupRows> {
  const t = performance.now();
  const lines = lineIds(c);
  if (phases !== undefined) phases.linesMs += performance.now() - t;
  const raw: Input = {
    rowCount: c.rowCount,
    line: lines.ids,
    timestamp: c.timestamp_ms,
    count: null,
    sum: c.quantity,
    min: c.quantity,
    max: c.quantity,
    first: c.timestamp_ms,
    last: c.timestamp_ms,
  };
  const built = levelsWithLines(
    c,
    lines,
    raw,
    hourAndDay ? ['hour', 'day'] : ['hour', 'day', 'month'],
    true,
    phases,
  );
  const out = built.rows;
  if (hourAndDay) return out;
  const t1 = performance.now();
  const meter = meterLevels(built.grain, out.get('day') as RollupRows, built.lines.get('day') as Int32Array);
  out.set('meter_day', meter.meterDay);
  out.set('meter_month', meter.meterMonth);
  if (phases !== undefined) phases.meterMs += performance.now() - t1;
  return out;
}

/**
 * Rows of each of `levels` (finest first) from `input`: the first level sums the input, each
 * next one the rows of the level before it.
 */
function levelsFrom(
  c: GrainColumns,
  lines: LineIds,
  first: Input,
  levels: readonly RollupLevel[],
  ordered: boolean,
  phases?: BuildPhases,
): Map<RollupLevel, RollupRows> {
  return levelsWithLines(c, lines, first, levels, ordered, phases).rows;
}

/** levelsFrom, with each level's row lines and the grain of the lines. */
function levelsWithLines(
  c: GrainColumns,
  lines: LineIds,
  first: Input,
  levels: readonly RollupLevel[],
  ordered: boolean,
  phases?: BuildPhases,
): { rows: Map<RollupLevel, RollupRows>; lines: Map<RollupLevel, Int32Array>; grain: LineGrain } {
  let t = performance.now();
  const lap = (key: 'hourMs' | 'dayMonthMs' | 'rowsMs'): void => {
    if (phases === undefined) return;
    const now = performance.now();
    phases[key] += now - t;
    t = now;
  };
  const grain = grainOfLines(c, lines);
  const out = new Map<RollupLevel, RollupRows>();
  const rowLines = new Map<RollupLevel, Int32Array>();
  let input = first;
  for (const level of levels) {
    const groups = groupInput(input, level, ordered);
    lap(level === 'hour' ? 'hourMs' : 'dayMonthMs');
    const { rows, line } = toRows(grain, groups);
    lap('rowsMs');
    out.set(level, rows);
    rowLines.set(level, line);
    // The next level sums this one's rows.
    input = rowsInput(rows, line);
  }
  return { rows: out, lines: rowLines, grain };
}

/** Rollup rows (of lines `line`) as the input of a coarser level. */
function rowsInput(rows: RollupRows, line: Int32Array): Input {
  return {
    rowCount: rows.rowCount,
    line,
    timestamp: rows.timestamp_ms,
    count: rows.count,
    sum: rows.quantity,
    min: rows.min,
    max: rows.max,
    first: rows.first_ts,
    last: rows.last_ts,
  };
}

/**
 * The meter-grain levels from the day rows (`dayLine`: their lines of `grain`): each line maps
 * to its meter line (account, meter, unit, kind; the other columns null), numbered in the order
 * the day rows first show it, and the day rows are summed per meter line and day, then month.
 * (As merging the day rows with the other columns set to null would, without going through
 * dictionaries and line keys again.)
 */
function meterLevels(
  grain: LineGrain,
  day: RollupRows,
  dayLine: Int32Array,
): { meterDay: RollupRows; meterMonth: RollupRows } {
  const cols = METER_GRAIN_COLUMNS.map((name) => grain.codes[name]);
  const cards = METER_GRAIN_COLUMNS.map((name) => grain.dicts[name].length + 1);
  const meterOf = new Int32Array(grain.lines).fill(-1);
  const byKey = new KeyTable(1024);
  const representative: number[] = [];
  const line = new Int32Array(day.rowCount);
  for (let i = 0; i < day.rowCount; i++) {
    const l = dayLine[i];
    let m = meterOf[l];
    if (m < 0) {
      let key = grain.kind[l];
      for (let k = 0; k < cols.length; k++) key = key * cards[k] + ((cols[k][l] + 1) >>> 0);
      const found = byKey.get(key);
      if (found === undefined) {
        m = representative.length;
        representative.push(l);
        byKey.set(key, m);
      } else m = found;
      meterOf[l] = m;
    }
    line[i] = m;
  }
  const keep: ReadonlySet<string> = new Set(METER_GRAIN_COLUMNS);
  const n = representative.length;
  const codes = {} as Record<RollupDictColumn, Uint32Array>;
  for (const name of ROLLUP_DICT_COLUMNS) {
    const out = new Uint32Array(n).fill(NULL_CODE);
    if (keep.has(name)) for (let m = 0; m < n; m++) out[m] = grain.codes[name][representative[m]];
    codes[name] = out;
  }
  const meterGrain: LineGrain = {
    lines: n,
    codes,
    dicts: grain.dicts,
    textOrders: grain.textOrders,
    kind: Uint8Array.from(representative, (l) => grain.kind[l]),
    accountRank: Int32Array.from(representative, (l) => grain.accountRank[l]),
    accounts: grain.accounts,
  };
  // A meter line's days come once per full line: not in time order.
  const meterDay = toRows(meterGrain, groupInput(rowsInput(day, line), 'meter_day', false));
  const meterMonth = toRows(
    meterGrain,
    groupInput(rowsInput(meterDay.rows, meterDay.line), 'meter_month', true),
  );
  return { meterDay: meterDay.rows, meterMonth: meterMonth.rows };
}

/** Per line, its grain values: codes per dictionary column, kind, and the account's rank. */
interface LineGrain {
  lines: number;
  codes: Record<RollupDictColumn, Uint32Array>;
  dicts: Record<RollupDictColumn, readonly string[]>;
  /** Per dictionary, its codes in text order (null: already in it), found when first needed. */
  textOrders: Partial<Record<RollupDictColumn, Int32Array | null>>;
  kind: Uint8Array;
  /** Rank of the line's account in text order, and the number of accounts. */
  accountRank: Int32Array;
  accounts: number;
}

/** `src` at each of `rows` (see remapCodesInto: a loop of its own). */
function gatherCodes(src: Uint32Array, rows: Int32Array): Uint32Array {
  const out = new Uint32Array(rows.length);
  for (let l = 0; l < rows.length; l++) out[l] = src[rows[l]];
  return out;
}

function grainOfLines(c: GrainColumns, lines: LineIds): LineGrain {
  const nLines = lines.firstRow.length;
  const firstRow = lines.firstRow;
  const codes = {} as Record<RollupDictColumn, Uint32Array>;
  const dicts = {} as Record<RollupDictColumn, readonly string[]>;
  for (const name of ROLLUP_DICT_COLUMNS) {
    codes[name] = gatherCodes(c[name].codes, firstRow);
    dicts[name] = c[name].dict;
  }
  const kind = new Uint8Array(nLines);
  for (let l = 0; l < nLines; l++) kind[l] = c.kind[firstRow[l]];
  // Accounts in text order.
  const accountDict = c.account_id.dict;
  const rank = textRanks(accountDict);
  const accountRank = new Int32Array(nLines);
  const accountCodes = codes.account_id;
  for (let l = 0; l < nLines; l++) accountRank[l] = rank[accountCodes[l]];
  return { lines: nLines, codes, dicts, textOrders: {}, kind, accountRank, accounts: accountDict.length };
}

/**
 * Finished groups as columns sorted by account (text order; within an account, groups keep
 * their order), with dictionaries of only the values used; `line`: each row's line. Each loop
 * is a function of its own (see remapCodesInto): V8 compiles a function once per loop it
 * enters hot (on-stack replacement), and this one runs for every level of every build.
 */
function toRows(grain: LineGrain, groups: Groups): { rows: RollupRows; line: Int32Array } {
  const m = groups.n;
  // Groups of a raw segment's rows (sorted by account) are already in order: no permutation.
  const order = accountOrder(grain, groups.line, m);
  // Groups no later build reuses hand their arrays over as they are: copying a large level's
  // columns into fresh memory cost a page fault per 4 KiB.
  const handOver = !groups.kept();
  const line =
    order !== null
      ? gatherInt32(groups.line, order)
      : handOver
        ? groups.line.subarray(0, m)
        : groups.line.slice(0, m);
  const gather = (from: Float64Array): Float64Array =>
    order !== null ? gatherFloat64(from, order) : handOver ? from.subarray(0, m) : from.slice(0, m);
  const exact = groups.bigSum.size === 0 && groups.bigMin.size === 0 && groups.bigMax.size === 0;
  const used = usedLines(line, grain.lines);
  const rows: RollupRows = {
    rowCount: m,
    ...(Object.fromEntries(
      ROLLUP_DICT_COLUMNS.map((name) => [name, remapDict(grain, name, used, line)]),
    ) as Record<RollupDictColumn, DictColumn>),
    kind: kindsOf(grain.kind, line),
    timestamp_ms: gather(groups.bucket),
    // No group met a value beyond 2^53: every sum, min and max is a safe number.
    quantity: { values: exact ? gather(groups.sum) : new Float64Array(m), big: null },
    count: gather(groups.count),
    min: { values: exact ? gather(groups.min) : new Float64Array(m), big: null },
    max: { values: exact ? gather(groups.max) : new Float64Array(m), big: null },
    first_ts: gather(groups.first),
    last_ts: gather(groups.last),
  };
  if (!exact) putExact(groups, rows, order);
  return { rows, line };
}

/**
 * The order of the first `m` groups (of lines `groupLine`) sorted by account rank, stable; null
 * when they already are.
 */
function accountOrder(grain: LineGrain, groupLine: Int32Array, m: number): Int32Array | null {
  const rankOf = grain.accountRank;
  const starts = new Int32Array(grain.accounts + 1);
  let inOrder = true;
  let prevRank = -1;
  for (let g = 0; g < m; g++) {
    const rank = rankOf[groupLine[g]];
    if (rank < prevRank) inOrder = false;
    prevRank = rank;
    starts[rank + 1]++;
  }
  if (inOrder) return null;
  for (let a = 0; a < grain.accounts; a++) starts[a + 1] += starts[a];
  const order = new Int32Array(m);
  for (let g = 0; g < m; g++) order[starts[rankOf[groupLine[g]]]++] = g;
  return order;
}

function gatherInt32(from: Int32Array, order: Int32Array): Int32Array {
  const out = new Int32Array(order.length);
  for (let i = 0; i < order.length; i++) out[i] = from[order[i]];
  return out;
}

function gatherFloat64(from: Float64Array, order: Int32Array): Float64Array {
  const out = new Float64Array(order.length);
  for (let i = 0; i < order.length; i++) out[i] = from[order[i]];
  return out;
}

function kindsOf(lineKind: Uint8Array, line: Int32Array): Uint8Array {
  const kind = new Uint8Array(line.length);
  for (let i = 0; i < line.length; i++) kind[i] = lineKind[line[i]];
  return kind;
}

/** The exact sums, min and max of groups that met a value beyond 2^53 (toRows). */
function putExact(groups: Groups, rows: RollupRows, order: Int32Array | null): void {
  for (let i = 0; i < rows.rowCount; i++) {
    const g = order === null ? i : order[i];
    groups.put(rows.quantity, i, g, 'sum');
    groups.put(rows.min, i, g, 'min');
    groups.put(rows.max, i, g, 'max');
  }
}

/** 1 for each of `lines` lines some row is of. */
function usedLines(line: Int32Array, lines: number): Uint8Array {
  const used = new Uint8Array(lines);
  for (let i = 0; i < line.length; i++) used[line[i]] = 1;
  return used;
}

/**
 * Column `name` of rows of lines `line`, over a dictionary of only the values they use, in text
 * order (as rollup files store it: the encoder then has nothing to sort). Codes are assigned per
 * line, then copied per row.
 */
function remapDict(grain: LineGrain, name: RollupDictColumn, used: Uint8Array, line: Int32Array): DictColumn {
  const dictIn = grain.dicts[name];
  const lineCodes = grain.codes[name];
  const newCode = new Int32Array(dictIn.length).fill(-1);
  markUsedCodes(lineCodes, used, newCode);
  const order = textOrderOf(grain, name);
  const dict: string[] = [];
  for (let k = 0; k < dictIn.length; k++) {
    const code = order === null ? k : order[k];
    if (newCode[code] < 0) continue;
    newCode[code] = dict.length;
    dict.push(dictIn[code]);
  }
  const codeOfLine = new Uint32Array(grain.lines);
  for (let l = 0; l < grain.lines; l++) {
    const code = lineCodes[l];
    codeOfLine[l] = code === NULL_CODE ? NULL_CODE : newCode[code];
  }
  return { dict, codes: gatherCodes(codeOfLine, line) };
}

/** 0 in `newCode` for each code a used line holds (the rest stay -1). */
function markUsedCodes(lineCodes: Uint32Array, used: Uint8Array, newCode: Int32Array): void {
  for (let l = 0; l < used.length; l++) {
    const code = lineCodes[l];
    if (used[l] === 1 && code !== NULL_CODE) newCode[code] = 0;
  }
}

/** The grain's codes of `name` in text order of their values, null when that is code order. */
function textOrderOf(grain: LineGrain, name: RollupDictColumn): Int32Array | null {
  let order = grain.textOrders[name];
  if (order === undefined) grain.textOrders[name] = order = textOrder(grain.dicts[name]);
  return order;
}

/** Rows [from, to) of `rows` as rows of their own (copied; the dictionaries are shared). */
export function sliceRows(rows: RollupRows, from: number, to: number): RollupRows {
  const quantity = (q: QuantityColumn): QuantityColumn => {
    let big: Map<number, bigint> | null = null;
    if (q.big !== null)
      for (const [row, v] of q.big) if (row >= from && row < to) (big ??= new Map()).set(row - from, v);
    return { values: q.values.slice(from, to), big };
  };
  return {
    rowCount: to - from,
    ...(Object.fromEntries(
      ROLLUP_DICT_COLUMNS.map((name) => [
        name,
        { dict: rows[name].dict, codes: rows[name].codes.slice(from, to) },
      ]),
    ) as Record<RollupDictColumn, DictColumn>),
    kind: rows.kind.slice(from, to),
    timestamp_ms: rows.timestamp_ms.slice(from, to),
    quantity: quantity(rows.quantity),
    count: rows.count.slice(from, to),
    min: quantity(rows.min),
    max: quantity(rows.max),
    first_ts: rows.first_ts.slice(from, to),
    last_ts: rows.last_ts.slice(from, to),
  };
}

/**
 * Each part's rows (sorted by account) cut in two at one account: those before it and the
 * rest, so two combines can run side by side over account ranges that do not overlap and
 * their rows be joined in order (concatRows). Null when one side would be empty.
 */
export function splitRowsByAccount(parts: readonly RollupRows[]): [RollupRows[], RollupRows[]] | null {
  let largest: RollupRows | undefined;
  for (const p of parts)
    if (p.rowCount > 0 && (largest === undefined || p.rowCount > largest.rowCount)) largest = p;
  if (largest === undefined) return null;
  const pivot = accountAt(largest, largest.rowCount >> 1);
  const before: RollupRows[] = [];
  const after: RollupRows[] = [];
  for (const p of parts) {
    // The first row whose account is not before the pivot.
    let lo = 0;
    let hi = p.rowCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (accountAt(p, mid) < pivot) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) before.push(sliceRows(p, 0, lo));
    if (lo < p.rowCount) after.push(sliceRows(p, lo, p.rowCount));
  }
  return before.length === 0 || after.length === 0 ? null : [before, after];
}

function accountAt(rows: RollupRows, i: number): string {
  return rows.account_id.dict[rows.account_id.codes[i]];
}

/**
 * Row sets of one level over account ranges in order (every account of a set before every
 * account of the next) as one set: dictionaries made common, columns joined.
 */
export function concatRows(sets: readonly RollupRows[]): RollupRows {
  if (sets.length === 1) return sets[0];
  const n = sets.reduce((a, s) => a + s.rowCount, 0);
  const dictCols = commonDictColumns(sets, n);
  const join = <T extends Uint8Array | Float64Array>(
    make: (n: number) => T,
    pick: (s: RollupRows) => T,
  ): T => {
    const out = make(n);
    let at = 0;
    for (const s of sets) {
      out.set(pick(s).subarray(0, s.rowCount), at);
      at += s.rowCount;
    }
    return out;
  };
  const f64 = (pick: (s: RollupRows) => Float64Array) => join((k) => new Float64Array(k), pick);
  const quantities = (pick: (s: RollupRows) => QuantityColumn): QuantityColumn => {
    let big: Map<number, bigint> | null = null;
    let at = 0;
    for (const s of sets) {
      const b = pick(s).big;
      if (b !== null) for (const [row, v] of b) (big ??= new Map()).set(at + row, v);
      at += s.rowCount;
    }
    return { values: f64((s) => pick(s).values), big };
  };
  return {
    rowCount: n,
    ...dictCols,
    kind: join(
      (k) => new Uint8Array(k),
      (s) => s.kind,
    ),
    timestamp_ms: f64((s) => s.timestamp_ms),
    quantity: quantities((s) => s.quantity),
    count: f64((s) => s.count),
    min: quantities((s) => s.min),
    max: quantities((s) => s.max),
    first_ts: f64((s) => s.first_ts),
    last_ts: f64((s) => s.last_ts),
  };
}
