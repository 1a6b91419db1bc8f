/**
 * runQuery against a brute-force reference over the same generated events: every filter,
 * group key, metric, order and limit, on a real UsageDb with several segments per partition,
 * several blocks per segment and a non-empty memtable. Quantities reach 10^37 (exact sums).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryEngine } from '../../src/query/engine.ts';
import { parseJsonQuery, runQuery } from '../../src/query/index.ts';
import {
  DAY,
  type Fixture,
  generateEvents,
  jsonQueryArb,
  MAY,
  openFixture,
  referenceQuery,
} from './fixtures.ts';
import { readSnapshot } from '../../src/testing.ts';

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
const RUNS = Number(process.env.FC_RUNS ?? 300);

describe('runQuery equals the brute-force reference', () => {
  let fx: Fixture;

  beforeAll(async () => {
    fx = await openFixture(generateEvents(7, 1500));
    const snap = readSnapshot(fx.db);
    // The property is only meaningful with several segments and rows still in the memtable.
    expect(snap.segments.length).toBeGreaterThan(20);
    expect(snap.memtables.reduce((n, m) => n + m.rowCount, 0)).toBeGreaterThan(100);
  });

  afterAll(async () => {
    await fx.db.close();
  });

  it(`random queries (fast-check seed ${SEED}; replay with FC_SEED)`, async () => {
    await fc.assert(
      fc.asyncProperty(jsonQueryArb(), async (q) => {
        const result = await runQuery(readSnapshot(fx.db), parseJsonQuery(q));
        expect(result.rows).toEqual(referenceQuery(fx.events, q));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('the same answers with the chunk cache disabled and with a tiny one', async () => {
    const engines = [createQueryEngine({ cacheBytes: 0 }), createQueryEngine({ cacheBytes: 20_000 })];
    await fc.assert(
      fc.asyncProperty(jsonQueryArb(), async (q) => {
        const want = referenceQuery(fx.events, q);
        for (const engine of engines)
          expect((await engine.runQuery(readSnapshot(fx.db), parseJsonQuery(q))).rows).toEqual(want);
        expect(engines[1].cache.sizeBytes).toBeLessThanOrEqual(20_000);
      }),
      { seed: SEED + 1, numRuns: 60 },
    );
  });

  it('block summaries: a repeat over whole days (served from summaries) gives the same answer', async () => {
    const engine = createQueryEngine();
    let served = 0;
    await fc.assert(
      fc.asyncProperty(jsonQueryArb(), fc.integer({ min: 0, max: 5 }), async (q, day) => {
        // Whole days, so blocks lie wholly inside the range and summaries may stand for them.
        const whole = { ...q, from: MAY + day * DAY, to: MAY + (day + 1 + (day % 3)) * DAY };
        const want = referenceQuery(fx.events, whole);
        const first = await engine.runQuery(readSnapshot(fx.db), parseJsonQuery(whole));
        expect(first.rows).toEqual(want);
        const again = await engine.runQuery(readSnapshot(fx.db), parseJsonQuery(whole));
        expect(again.rows).toEqual(want);
        if (again.stats.cacheMisses === 0 && again.stats.blocksRead > 0) served++;
      }),
      { seed: SEED + 2, numRuns: 120 },
    );
    // The property must have exercised summaries, not only the row path.
    expect(served).toBeGreaterThan(10);
  });

  it('large key spaces: a sparse table (hours of a year) and chunk-local keys (beyond 2^52)', async () => {
    const keys = ['hour', 'account_id', 'product_id', 'meter_id', 'model_id', 'dimensions.region'];
    for (const q of [
      {
        from: '2026-01-01T00:00:00Z',
        to: '2027-01-01T00:00:00Z',
        group_by: keys,
        metrics: ['sum', 'count', 'min', 'max'] as const,
      },
      {
        from: 0,
        to: 2 ** 52,
        group_by: keys,
        metrics: ['sum', 'count', 'min', 'max'] as const,
        order_by: [{ key: 'sum', dir: 'desc' as const }],
        limit: 50,
      },
    ]) {
      const json = { ...q, metrics: [...q.metrics] };
      expect((await runQuery(readSnapshot(fx.db), parseJsonQuery(json))).rows).toEqual(
        referenceQuery(fx.events, json),
      );
    }
  });

  it('group_by [] gives one row of totals, zeros and null min/max when nothing matches', async () => {
    const q = {
      from: '2020-01-01T00:00:00Z',
      to: '2020-02-01T00:00:00Z',
      metrics: ['sum', 'count', 'min', 'max'] as const,
    };
    const { rows } = await runQuery(readSnapshot(fx.db), parseJsonQuery({ ...q, metrics: [...q.metrics] }));
    expect(rows).toEqual([{ sum: '0', count: 0, min: null, max: null }]);
  });

  it('sums beyond 2^53 and 10^38 stay exact', async () => {
    const { rows } = await runQuery(
      readSnapshot(fx.db),
      parseJsonQuery({ from: 0, to: Date.UTC(2027, 0, 1) }),
    );
    const exact = fx.events.reduce((s, e) => s + e.quantity, 0n);
    expect(exact > 10n ** 38n).toBe(true);
    expect(rows).toEqual([{ sum: exact.toString(), count: fx.events.length }]);
  });
});

describe('over generated datasets', () => {
  it(`fresh databases, several queries each (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(jsonQueryArb(), { minLength: 1, maxLength: 8 }),
        async (dataSeed, count, batches, queries) => {
          const fx = await openFixture(generateEvents(dataSeed, count, 3), { batches, blockRows: 16 });
          try {
            for (const q of queries) {
              expect((await runQuery(readSnapshot(fx.db), parseJsonQuery(q))).rows).toEqual(
                referenceQuery(fx.events, q),
              );
            }
          } finally {
            await fx.db.close();
          }
        },
      ),
      { seed: SEED + 2, numRuns: 25 },
    );
  });
});
