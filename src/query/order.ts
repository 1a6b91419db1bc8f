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
import { compareQuantity, type Quantity } from '../model/quantity.ts';
import type { GroupKey, Metric, QueryOrder, RowValue } from './types.ts';

/** A finished group: key values in group_by order and final metrics. */
export interface ResultGroup {
  values: RowValue[];
  count: number;
  sum: Quantity;
  min: Quantity | null;
  max: Quantity | null;
}

type Compare = (a: ResultGroup, b: ResultGroup) => number;

function compareValue(a: RowValue, b: RowValue): number {
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

export function comparatorFor(orderBy: readonly QueryOrder[], groupBy: readonly GroupKey[]): Compare {
  const parts: Compare[] = orderBy.map((o) => {
    const base: Compare = METRIC_NAMES.includes(o.key)
      ? metricCompare(o.key as Metric)
      : (
          (i) => (a: ResultGroup, b: ResultGroup) =>
            compareValue(a.values[i], b.values[i])
        )(groupBy.indexOf(o.key as GroupKey));
    return o.dir === 'desc' ? (a, b) => base(b, a) : base;
  });
  for (let i = 0; i < groupBy.length; i++) parts.push((a, b) => compareValue(a.values[i], b.values[i]));
  return (a, b) => {
    for (const p of parts) {
      const c = p(a, b);
      if (c !== 0) return c;
    }
    return 0;
  };
}

/** The first `limit` groups in `cmp` order (all of them when limit is null), sorted. */
export function orderAndLimit(groups: ResultGroup[], cmp: Compare, limit: number | null): ResultGroup[] {
  if (limit === null || limit >= groups.length) return groups.sort(cmp);
  if (limit === 0) return [];
  if (limit * 4 > groups.length) return groups.sort(cmp).slice(0, limit);
  return topN(groups, limit, cmp);
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
