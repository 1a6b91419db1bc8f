/**
 * The rollup build's grouping against a plain reference: random events (in a raw segment's
 * order or shuffled, so both the by-line path and the hashed path run; quantities up to
 * ±(10^38 − 1), so sums split into several rows) summed per grain key and bucket must equal,
 * at every level, what the rows say, also after encoding and decoding the file, after
 * merging the rows of parts and in a file encoded in parts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DictColumn, type EventColumns, NULL_CODE, quantityBigAt } from '../../src/model/columns.ts';
import { bucketOf, bucketStart, ROLLUP_LEVELS } from '../../src/rollup/levels.ts';
import {
  assembleRollupFile,
  encodeRollupBlocks,
  encodeRollupFile,
  readRollupFile,
} from '../../src/rollup/rollup-file.ts';
import {
  buildRollupLevels,
  combineDayRows,
  concatRows,
  mergeRollupRows,
  ROLLUP_DICT_COLUMNS,
  sharedDictionaries,
  splitRowsByAccount,
  type RollupRows,
} from '../../src/rollup/rollup-rows.ts';
import { crc32c } from '../../src/storage/encoding/crc32c.ts';
import type { RollupLevel } from '../../src/storage/manifest.ts';

const MAY = Date.UTC(2026, 4, 1);
const BIG = 10n ** 38n - 1n;

interface Ev {
  account: number;
  product: number;
  model: number;
  kind: number;
  ts: number;
  q: bigint;
}

const event = fc.record({
  account: fc.integer({ min: 0, max: 2 }),
  product: fc.integer({ min: 0, max: 1 }),
  model: fc.integer({ min: -1, max: 0 }),
  kind: fc.integer({ min: 0, max: 2 }),
  // Around a month boundary: a few days, or a few hours (many events per hour).
  ts: fc
    .oneof(fc.integer({ min: -3 * 24 * 60, max: 3 * 24 * 60 }), fc.integer({ min: -180, max: 180 }))
    .map((m) => MAY + m * 60_000),
  q: fc.oneof(
    fc.bigInt({ min: -1000n, max: 1000n }),
    fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }),
    fc.constantFrom(BIG, -BIG, BIG - 1n, 2n ** 53n, -(2n ** 53n) - 1n),
  ),
});

function dictColumn(values: (string | null)[]): DictColumn {
  const dict = [...new Set(values.filter((v): v is string => v !== null))].sort();
  return { dict, codes: Uint32Array.from(values, (v) => (v === null ? NULL_CODE : dict.indexOf(v))) };
}

function columns(events: readonly Ev[]): EventColumns {
  const n = events.length;
  const values = new Float64Array(n);
  const big = new Map<number, bigint>();
  events.forEach((e, i) => {
    if (e.q >= -(2n ** 53n - 1n) && e.q <= 2n ** 53n - 1n) values[i] = Number(e.q);
    else {
      values[i] = Number.NaN;
      big.set(i, e.q);
    }
  });
  const same = (v: string) => dictColumn(events.map(() => v));
  return {
    rowCount: n,
    event_id: events.map((_, i) => `e${i}`),
    kind: Uint8Array.from(events, (e) => e.kind),
    correction_original_event_id: events.map(() => null),
    correction_reason: events.map(() => null),
    // Account names whose text order differs from their number's order.
    account_id: dictColumn(events.map((e) => `acct_${(7 - e.account) * 3}`)),
    subscription_id: dictColumn(events.map((e) => `sub_${e.account}`)),
    product_id: dictColumn(events.map((e) => `p${e.product}`)),
    meter_id: same('m'),
    model_id: dictColumn(events.map((e) => (e.model < 0 ? null : `model${e.model}`))),
    unit: same('u'),
    source: same('s'),
    dimensions: dictColumn(events.map(() => null)),
    timestamp_ms: Float64Array.from(events, (e) => e.ts),
    quantity: { values, big: big.size > 0 ? big : null },
    ingested_at_ms: new Float64Array(n),
  };
}

interface Agg {
  sum: bigint;
  count: number;
  min: bigint;
  max: bigint;
  first: number;
  last: number;
}

function keyOf(parts: (string | number | null)[]): string {
  return JSON.stringify(parts);
}

/**
 * The reference: events summed per grain key and bucket of `level` (the meter grain keeps the
 * account, meter, unit and kind: product and model are null there).
 */
function reference(events: readonly Ev[], level: RollupLevel): Map<string, Agg> {
  const out = new Map<string, Agg>();
  const meter = level === 'meter_day' || level === 'meter_month';
  for (const e of events) {
    const key = keyOf([
      `acct_${(7 - e.account) * 3}`,
      meter ? null : `p${e.product}`,
      meter || e.model < 0 ? null : `model${e.model}`,
      e.kind,
      bucketStart(bucketOf(level), e.ts),
    ]);
    const a = out.get(key);
    if (a === undefined) out.set(key, { sum: e.q, count: 1, min: e.q, max: e.q, first: e.ts, last: e.ts });
    else {
      a.sum += e.q;
      a.count++;
      if (e.q < a.min) a.min = e.q;
      if (e.q > a.max) a.max = e.q;
      a.first = Math.min(a.first, e.ts);
      a.last = Math.max(a.last, e.ts);
    }
  }
  return out;
}

/** Rows summed per grain key and bucket (split rows of one key added up), checking each row. */
function summed(blocks: readonly RollupRows[]): Map<string, Agg> {
  const out = new Map<string, Agg>();
  let prevAccount = '';
  for (const rows of blocks) {
    for (let i = 0; i < rows.rowCount; i++) {
      const text = (name: (typeof ROLLUP_DICT_COLUMNS)[number]) => {
        const code = rows[name].codes[i];
        return code === NULL_CODE ? null : rows[name].dict[code];
      };
      const account = text('account_id') as string;
      expect(account >= prevAccount).toBe(true);
      prevAccount = account;
      const sum = quantityBigAt(rows.quantity, i);
      expect(sum <= BIG && sum >= -BIG).toBe(true);
      const key = keyOf([account, text('product_id'), text('model_id'), rows.kind[i], rows.timestamp_ms[i]]);
      const row: Agg = {
        sum,
        count: rows.count[i],
        min: quantityBigAt(rows.min, i),
        max: quantityBigAt(rows.max, i),
        first: rows.first_ts[i],
        last: rows.last_ts[i],
      };
      const a = out.get(key);
      if (a === undefined) out.set(key, row);
      else {
        a.sum += row.sum;
        a.count += row.count;
        if (row.min < a.min) a.min = row.min;
        if (row.max > a.max) a.max = row.max;
        a.first = Math.min(a.first, row.first);
        a.last = Math.max(a.last, row.last);
      }
    }
  }
  return out;
}

/** A raw segment's order: account, product, model (null first), then time. */
function segmentOrder(events: Ev[]): Ev[] {
  const account = (e: Ev) => `acct_${(7 - e.account) * 3}`;
  return [...events].sort(
    (a, b) =>
      (account(a) < account(b) ? -1 : account(a) > account(b) ? 1 : 0) ||
      a.product - b.product ||
      a.model - b.model ||
      a.ts - b.ts,
  );
}

describe('rollup rows', () => {
  it('every level sums exactly what the reference sums, in any row order', () => {
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 300, size: 'max' }),
        fc.boolean(),
        fc.boolean(),
        (drawn, sorted, huge) => {
          // Without huge quantities no sum can split: one row per key.
          const events = huge ? drawn : drawn.map((e) => ({ ...e, q: e.q % 2n ** 60n }));
          const input = sorted ? segmentOrder(events) : events;
          const built = buildRollupLevels(columns(input));
          for (const level of ROLLUP_LEVELS) {
            const rows = built.get(level) as RollupRows;
            const want = reference(events, level);
            expect(summed([rows])).toEqual(want);
            if (!huge) expect(rows.rowCount).toBe(want.size);
            // Through the file (small blocks: several per file) the rows are the same.
            const file = readRollupFile(encodeRollupFile(rows, level, 7).bytes);
            expect(summed(file.rows)).toEqual(want);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('merging the rows of parts equals rolling up all their events', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(event, { minLength: 1, maxLength: 80, size: 'max' }), {
          minLength: 1,
          maxLength: 4,
        }),
        (parts) => {
          for (const level of ['day', 'month', 'meter_day', 'meter_month'] as const) {
            const rows = parts.map(
              (p) => buildRollupLevels(columns(segmentOrder(p))).get(level) as RollupRows,
            );
            expect(summed([mergeRollupRows(rows, level)])).toEqual(reference(parts.flat(), level));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("the coarser levels derived from the parts' summed day rows equal rolling up all their events", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(event, { minLength: 1, maxLength: 80, size: 'max' }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        (drawn, huge) => {
          const parts = huge ? drawn : drawn.map((p) => p.map((e) => ({ ...e, q: e.q % 2n ** 60n })));
          // As a carrying build hands them back: hour and day only.
          const days = parts.map(
            (p) => buildRollupLevels(columns(segmentOrder(p)), undefined, true).get('day') as RollupRows,
          );
          // Whole, or (as two lanes do) per half of the accounts, the halves joined in order.
          const split = splitRowsByAccount(days);
          const halves = (split ?? [days]).map((range) => combineDayRows(range));
          for (const level of ['day', 'month', 'meter_day', 'meter_month'] as const) {
            const rows = concatRows(halves.map((h) => h.get(level) as RollupRows));
            const accounts = Array.from(rows.account_id.codes, (c) => rows.account_id.dict[c]);
            expect(accounts).toEqual([...accounts].sort());
            const want = reference(parts.flat(), level);
            expect(summed([rows])).toEqual(want);
            if (!huge) expect(rows.rowCount).toBe(want.size);
            // As rollup() writes it: the halves encoded apart as parts of one file, their codes
            // mapped into shared dictionaries, the checksum combined from the blocks'.
            const sets = halves.map((h) => h.get(level) as RollupRows);
            const shared = sharedDictionaries(sets, true);
            const file = assembleRollupFile(
              level,
              shared.dicts,
              sets.map((set, k) => encodeRollupBlocks(set, level, shared.maps[k])),
            );
            expect(file.crc32c).toBe(crc32c(file.bytes));
            expect(file.rows).toBe(rows.rowCount);
            const read = readRollupFile(file.bytes).rows;
            expect(read.reduce((n, b) => n + b.rowCount, 0)).toBe(rows.rowCount);
            expect(summed(read)).toEqual(want);
            // The same dictionaries, in text order, as the file encoded whole.
            const whole = readRollupFile(encodeRollupFile(rows, level).bytes).rows;
            for (const name of ROLLUP_DICT_COLUMNS) {
              const dict = read[0]?.[name].dict ?? [];
              expect(dict).toEqual([...dict].sort());
              expect(dict).toEqual(whole[0]?.[name].dict ?? []);
            }
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
