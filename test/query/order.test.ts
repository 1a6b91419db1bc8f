/**
 * Result order: whichever way orderAndLimit sorts (ranks placed in a table, ranks packed and
 * sorted as numbers, a comparator, a bounded heap), the rows come out in the order of a plain
 * comparison of the key tuples (null first, strings by code units), metrics first when asked.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { orderAndLimit, type ResultGroup } from '../../src/query/order.ts';
import type { GroupKey, QueryOrder, RowValue } from '../../src/query/types.ts';

const KEYS: GroupKey[] = ['product_id', 'meter_id', 'model_id', 'unit'];

function compareTuples(a: readonly RowValue[], b: readonly RowValue[]): number {
  for (let k = 0; k < a.length; k++) {
    if (a[k] === b[k]) continue;
    if (a[k] === null) return -1;
    if (b[k] === null) return 1;
    return (a[k] as string) < (b[k] as string) ? -1 : 1;
  }
  return 0;
}

/** Distinct key tuples of `keyCount` keys, values drawn from `alphabet` distinct strings per key. */
function tuples(keyCount: number, alphabet: number) {
  const value = fc.option(
    fc.integer({ min: 0, max: alphabet - 1 }).map((i) => `v${i}`),
    { freq: 8 },
  );
  return fc.uniqueArray(fc.array(value, { minLength: keyCount, maxLength: keyCount }), {
    minLength: 0,
    maxLength: 300,
    selector: (t) => JSON.stringify(t),
  });
}

function groupsOf(keys: (string | null)[][], counts: number[]): ResultGroup[] {
  return keys.map((values, i) => ({
    values,
    count: counts[i % counts.length],
    sum: 0,
    min: null,
    max: null,
    group: i,
  }));
}

describe('orderAndLimit', () => {
  it('sorts by key tuple whatever the key space (table, packed ranks)', () => {
    fc.assert(
      fc.property(
        fc
          .tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom(2, 40, 5000))
          .chain(([keyCount, alphabet]) => tuples(keyCount, alphabet).map((keys) => ({ keyCount, keys }))),
        ({ keyCount, keys }) => {
          const groupBy = KEYS.slice(0, keyCount);
          const got = orderAndLimit(groupsOf(keys, [1]), [], groupBy, null).map((g) => g.values);
          expect(got).toEqual([...keys].sort(compareTuples));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('orders by a metric first, ties by key tuple; a limit keeps the first rows', () => {
    fc.assert(
      fc.property(
        tuples(2, 30),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 320 }),
        (keys, counts, limit) => {
          const orderBy: QueryOrder[] = [{ key: 'count', dir: 'desc' }];
          const groups = groupsOf(keys, counts);
          const expected = [...groups]
            .sort((a, b) => b.count - a.count || compareTuples(a.values, b.values))
            .slice(0, limit)
            .map((g) => g.values);
          const got = orderAndLimit(groupsOf(keys, counts), orderBy, KEYS.slice(0, 2), limit).map(
            (g) => g.values,
          );
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });
});
