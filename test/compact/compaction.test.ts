import { describe, expect, it } from 'vitest';
import {
  BACKGROUND_MERGE_ROWS_MAX,
  COMPACT_MERGE_ROWS_MAX,
  MERGE_FANOUT,
  planCompaction,
  planMerge,
  TIER_BASE_ROWS,
  tierOf,
} from '../../src/compact/planner.ts';
import type { RawSegmentEntry } from '../../src/storage/manifest.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { DAY_MS, simDb, T0, usage, usageBatch } from '../support/events.ts';

function entry(id: number, rows: number): RawSegmentEntry {
  return { id, rows, min_ts: 1, max_ts: 2, size_bytes: rows * 22, crc32c: 0, retractions: 0 };
}

const RANGE = { from: T0 - DAY_MS, to: T0 + 40 * DAY_MS, group_by: ['account_id', 'meter_id'] };

describe('compaction policy', () => {
  it('tiers grow by the fanout from the base size', () => {
    expect(tierOf(1)).toBe(0);
    expect(tierOf(TIER_BASE_ROWS * MERGE_FANOUT - 1)).toBe(0);
    expect(tierOf(TIER_BASE_ROWS * MERGE_FANOUT)).toBe(1);
    expect(tierOf(TIER_BASE_ROWS * MERGE_FANOUT ** 2)).toBe(2);
  });

  it('merges the oldest full tier, lowest first, never above the row cap', () => {
    const cap = BACKGROUND_MERGE_ROWS_MAX;
    expect(planMerge([entry(1, 10), entry(2, 10), entry(3, 10)], cap)).toBeNull();
    const six = [entry(1, 10), entry(2, 200_000), entry(3, 10), entry(4, 10), entry(5, 10), entry(6, 10)];
    expect(planMerge(six, cap)?.map((e) => e.id)).toEqual([1, 3, 4, 5]);
    const full = Array.from({ length: 4 }, (_, i) => entry(i + 1, cap));
    expect(planMerge(full, cap)).toBeNull();
  });

  it('an explicit compaction also merges fewer than a tier, smallest first, under its cap', () => {
    expect(planCompaction([entry(1, 10), entry(2, 20)], COMPACT_MERGE_ROWS_MAX)?.map((e) => e.id)).toEqual([
      1, 2,
    ]);
    expect(planCompaction([entry(1, 10)], COMPACT_MERGE_ROWS_MAX)).toBeNull();
    const big = [entry(1, 900_000), entry(2, 10), entry(3, 900_000), entry(4, 20)];
    expect(planCompaction(big, COMPACT_MERGE_ROWS_MAX)?.map((e) => e.id)).toEqual([1, 2, 4]);
  });

  it('bounds the number of live segments as small flushes accumulate (simulated sizes)', () => {
    let raw: RawSegmentEntry[] = [];
    let next = 1;
    for (let flush = 0; flush < 1_000; flush++) {
      raw.push(entry(next++, 5_000));
      for (
        let plan = planMerge(raw, BACKGROUND_MERGE_ROWS_MAX);
        plan !== null;
        plan = planMerge(raw, BACKGROUND_MERGE_ROWS_MAX)
      ) {
        const ids = new Set(plan.map((e) => e.id));
        const merged = entry(
          next++,
          plan.reduce((n, e) => n + e.rows, 0),
        );
        const at = raw.findIndex((e) => ids.has(e.id));
        raw = raw.filter((e) => !ids.has(e.id));
        raw.splice(at, 0, merged);
      }
    }
    // 5M rows in 1,000 small flushes: files at the cap, and fewer than MERGE_FANOUT per tier below.
    const total = 1_000 * 5_000;
    expect(raw.reduce((n, e) => n + e.rows, 0)).toBe(total);
    const tiersBelowCap = tierOf(BACKGROUND_MERGE_ROWS_MAX) + 1;
    expect(raw.length).toBeLessThanOrEqual(
      Math.ceil(total / (BACKGROUND_MERGE_ROWS_MAX / MERGE_FANOUT)) + tiersBelowCap * (MERGE_FANOUT - 1),
    );
    expect(raw.length).toBeLessThan(1_000 / 10);
  });
});

describe('compaction in the database', () => {
  it('tick() runs the merges the policy asks for; answers and dedupe unchanged', async () => {
    const sim = simDb(3, { logger: silentLogger });
    const db = await sim.open();
    for (let f = 0; f < MERGE_FANOUT; f++) {
      await db.ingest(usageBatch(f * 50, 50));
      await db.flush();
    }
    const before = await db.query(RANGE);
    expect(db.stats().segments).toBe(MERGE_FANOUT);
    await db.tick();
    expect(db.stats().segments).toBe(1);
    expect(db.stats().compaction).toMatchObject({
      merges: 1,
      segmentsMerged: MERGE_FANOUT,
      duplicatesDropped: 0,
    });
    expect((await db.query(RANGE)).rows).toEqual(before.rows);
    expect((await db.ingest(usageBatch(0, 200))).duplicates).toBe(200);
    const changed = await db.ingest([usage(3, { quantity: 999_999 })]);
    expect(changed.conflicts).toBe(1);
    await db.close();
  });

  it('a merge above the inline size runs in the worker while ingest goes on', async () => {
    const sim = simDb(4, { logger: silentLogger });
    const db = await sim.open();
    for (let f = 0; f < 2; f++) {
      for (let b = 0; b < 12; b++) await db.ingest(usageBatch(f * 12_000 + b * 1_000, 1_000));
      await db.flush();
    }
    const before = await db.query(RANGE);
    const merging = db.compact();
    // Ingest during the merge: another account, so the totals above stay what they were.
    const during = await db.ingest(usageBatch(100_000, 500, { account_id: 'acct_during' }));
    expect(during.accepted).toBe(500);
    expect(await merging).toMatchObject({ inputSegments: 2, outputRows: 24_000, duplicatesDropped: 0 });
    const after = await db.query(RANGE);
    expect(after.rows.filter((r) => r.account_id !== 'acct_during')).toEqual(before.rows);
    expect((await db.ingest(usageBatch(0, 1_000))).duplicates).toBe(1_000);
    expect((await db.check({ deep: true })).ok).toBe(true);
    await db.close();
  });
});
