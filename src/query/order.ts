/**
 * Result order and limit: `order_by` entries first, then every group key ascending, so the
 * output is one deterministic sequence; `limit` keeps the first n (a bounded heap when n is
 * small next to the number of groups, e.g. the top 100 accounts).
 *
 * Invariants:
 * - the comparator is a total order on distinct groups (group key tuples are unique), so the
 *   heap selection and a full sort give the same rows;
 * - ascending order: null first, then strings by UTF-16 code units, quantities numerically.
 */
import { assert } from '../errors.ts';
import { compareQuantity, type Quantity } from '../model/quantity.ts';
import type { GroupKey, Metric, QueryOrder, RowValue } from './types.ts';

/** A finished group: key values in group_by order and final metrics. */
export interface ResultGroup {
  values: RowValue[];
  count: number;
  sum: Quantity;
  min: Quantity | null;
  max: Quantity | null;
  /** Position of the key tuple in ascending key order (set by rankGroups before a full sort). */
  rank?: number;
  /** The group's number in the aggregator that made it (Aggregator.results). */
  group: number;
}

type Compare = (a: ResultGroup, b: ResultGroup) => number;

export function compareRowValues(a: RowValue, b: RowValue): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

function compareNullableQuantity(a: Quantity | null, b: Quantity | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  return compareQuantity(a, b);
}

function metricCompare(metric: Metric): Compare {
  switch (metric) {
    case 'count':
      return (a, b) => a.count - b.count;
    case 'sum':
      return (a, b) => compareQuantity(a.sum, b.sum);
    case 'min':
      return (a, b) => compareNullableQuantity(a.min, b.min);
    case 'max':
      return (a, b) => compareNullableQuantity(a.max, b.max);
  }
}

const METRIC_NAMES: readonly string[] = ['sum', 'count', 'min', 'max'];

/**
 * Numbers every group by its key tuple in ascending key order (each key's distinct values
 * sorted once), so the key part of the order is one subtraction instead of a string
 * comparison per key. Returns the size of the rank space, 0 (nothing set) when it exceeds 2^53.
 */
export function rankGroups(groups: readonly ResultGroup[], keyCount: number): number {
  if (keyCount === 0) return 0;
  const n = groups.length;
  // Per key: each group's index into the key's distinct values, then those indexes replaced
  // by ranks once the (few) distinct values are sorted.
  const slots: Int32Array[] = [];
  const sizes: number[] = [];
  for (let k = 0; k < keyCount; k++) {
    const index = new Map<RowValue, number>();
    const distinct: RowValue[] = [];
    const slot = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = groups[i].values[k];
      let at = index.get(v);
      if (at === undefined) {
        at = distinct.length;
        distinct.push(v);
        index.set(v, at);
      }
      slot[i] = at;
    }
    slotsToRanks(slot, distinct);
    slots.push(slot);
    sizes.push(distinct.length);
  }
  const ranks = new Float64Array(n);
  const space = combineRanks(ranks, slots, sizes);
  if (space > 0) for (let i = 0; i < n; i++) groups[i].rank = ranks[i];
  return space;
}

/** Replaces each slot (an index into `distinct`) with its value's rank in ascending order. */
export function slotsToRanks(slot: Int32Array, distinct: readonly RowValue[]): void {
  const order = distinct.map((_, i) => i).sort((a, b) => compareRowValues(distinct[a], distinct[b]));
  const rankOf = new Int32Array(distinct.length);
  for (let r = 0; r < order.length; r++) rankOf[order[r]] = r;
  for (let i = 0; i < slot.length; i++) slot[i] = rankOf[slot[i]];
}

/**
 * Sets ranks[i] from group i's per-key ranks (`slots[k][i]`, of `sizes[k]` distinct values):
 * the key tuple's position in ascending order. Returns the rank space, 0 (nothing set) when
 * it exceeds 2^53.
 */
export function combineRanks(
  ranks: Float64Array,
  slots: readonly Int32Array[],
  sizes: readonly number[],
): number {
  const space = sizes.reduce((a, b) => a * b, 1);
  if (space > Number.MAX_SAFE_INTEGER) return 0;
  for (let i = 0; i < ranks.length; i++) {
    let r = 0;
    for (let k = 0; k < sizes.length; k++) r = r * sizes[k] + slots[k][i];
    ranks[i] = r;
  }
  return space;
}

/** The order: `orderBy` entries, then the group keys (by rank when the groups are ranked). */
export function comparatorFor(
  orderBy: readonly QueryOrder[],
  groupBy: readonly GroupKey[],
  ranked = false,
): Compare {
  const parts: Compare[] = orderBy.map((o) => {
    const base: Compare = METRIC_NAMES.includes(o.key)
      ? metricCompare(o.key as Metric)
      : (
          (i) => (a: ResultGroup, b: ResultGroup) =>
            compareRowValues(a.values[i], b.values[i])
        )(groupBy.indexOf(o.key as GroupKey));
    return o.dir === 'desc' ? (a, b) => base(b, a) : base;
  });
  if (ranked) {
    const byRank: Compare = (a, b) => (a.rank as number) - (b.rank as number);
    if (parts.length === 0) return byRank;
    parts.push(byRank);
  } else
    for (let i = 0; i < groupBy.length; i++) parts.push((a, b) => compareRowValues(a.values[i], b.values[i]));
  return (a, b) => {
    for (const p of parts) {
      const c = p(a, b);
      if (c !== 0) return c;
    }
    return 0;
  };
}

/**
 * The first `limit` groups in query order (all of them when limit is null), sorted. A full
 * sort ranks the key tuples first; a small limit (top 100 of 1,000 accounts) takes a bounded
 * heap, where most comparisons end at the metric. `rank` sets the groups' ranks as rankGroups
 * does (the aggregator does it from value ids, without hashing strings).
 */
export function orderAndLimit(
  groups: ResultGroup[],
  orderBy: readonly QueryOrder[],
  groupBy: readonly GroupKey[],
  limit: number | null,
  rank: (groups: readonly ResultGroup[]) => number = (g) => rankGroups(g, groupBy.length),
): ResultGroup[] {
  if (limit === 0) return [];
  if (limit !== null && limit * 4 <= groups.length)
    return topN(groups, limit, comparatorFor(orderBy, groupBy));
  const space = groups.length > 1 ? rank(groups) : 0;
  const byRank = space > 0 && orderBy.length === 0 ? sortByRank(groups, space) : null;
  const sorted = byRank ?? groups.sort(comparatorFor(orderBy, groupBy, space > 0));
  return limit === null || limit >= sorted.length ? sorted : sorted.slice(0, limit);
}

/**
 * The group numbers 0..n-1 in ascending key order, from each key's digit per group
 * (digits[k][g] in [0, cards[k]), ordered as the key's values): a radix sort, one stable
 * counting pass per key from the last, so no value is compared. A key whose digits are few in
 * a wide range (a large dictionary) takes a stable comparison sort instead of its pass.
 */
export function digitOrder(digits: readonly Int32Array[], cards: readonly number[], n: number): Int32Array {
  let order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let next = new Int32Array(n);
  for (let k = digits.length - 1; k >= 0; k--) {
    const d = digits[k];
    const card = cards[k];
    if (card > 8 * n + 1024) {
      order = Int32Array.from(Array.from(order).sort((a, b) => d[a] - d[b]));
      continue;
    }
    const start = new Int32Array(card + 1);
    for (let i = 0; i < n; i++) start[d[i] + 1]++;
    for (let c = 0; c < card; c++) start[c + 1] += start[c];
    for (let i = 0; i < n; i++) {
      const g = order[i];
      next[start[d[g]]++] = g;
    }
    [order, next] = [next, order];
  }
  for (let i = 1; i < n; i++) {
    let same = true;
    for (let k = 0; k < digits.length && same; k++) same = digits[k][order[i]] === digits[k][order[i - 1]];
    assert(!same, 'group key tuples are not distinct');
  }
  return order;
}

/** Groups in rank order (ranks are distinct; see rankOrder), or null. */
export function sortByRank(groups: readonly ResultGroup[], space: number): ResultGroup[] | null {
  const order = rankOrder(
    Float64Array.from(groups, (g) => g.rank as number),
    space,
  );
  if (order === null) return null;
  const out = new Array<ResultGroup>(groups.length);
  for (let i = 0; i < out.length; i++) out[i] = groups[order[i]];
  return out;
}

/**
 * The indexes 0..n-1 in ascending order of their distinct ranks (below `space`), without
 * comparator calls: placed by rank in a table when the rank space is small beside n (a billing
 * line's few products, meters, models and units), else a numeric sort of (rank, index) packed
 * in one number; null when that number would pass 2^53.
 */
export function rankOrder(ranks: Float64Array, space: number): Int32Array | null {
  const n = ranks.length;
  if (space * n > Number.MAX_SAFE_INTEGER) return null;
  const order = new Int32Array(n);
  if (space <= Math.max(32 * n, 16_384)) {
    // Index + 1 by rank: a fresh (zeroed) table needs no fill.
    const at = new Int32Array(space);
    for (let i = 0; i < n; i++) {
      const r = ranks[i];
      assert(at[r] === 0, 'group key tuples are not distinct');
      at[r] = i + 1;
    }
    let o = 0;
    for (let r = 0; r < space; r++) if (at[r] !== 0) order[o++] = at[r] - 1;
    return order;
  }
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) packed[i] = ranks[i] * n + i;
  packed.sort();
  for (let i = 0; i < n; i++) {
    order[i] = packed[i] % n;
    assert(
      i === 0 || Math.floor(packed[i] / n) !== Math.floor(packed[i - 1] / n),
      'group key tuples are not distinct',
    );
  }
  return order;
}

/** Bounded selection: a max-heap (by cmp) of the best k seen; O(n log k). */
function topN(items: readonly ResultGroup[], k: number, cmp: Compare): ResultGroup[] {
  const heap: ResultGroup[] = [];
  const siftUp = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (cmp(heap[i], heap[p]) <= 0) return;
      [heap[i], heap[p]] = [heap[p], heap[i]];
      i = p;
    }
  };
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < heap.length && cmp(heap[l], heap[worst]) > 0) worst = l;
      if (r < heap.length && cmp(heap[r], heap[worst]) > 0) worst = r;
      if (worst === i) return;
      [heap[i], heap[worst]] = [heap[worst], heap[i]];
      i = worst;
    }
  };
  for (const item of items) {
    if (heap.length < k) {
      heap.push(item);
      siftUp(heap.length - 1);
    } else if (cmp(item, heap[0]) < 0) {
      heap[0] = item;
      siftDown(0);
    }
  }
  return heap.sort(cmp);
}
