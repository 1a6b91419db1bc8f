/**
 * A crash at every file-system call of a rollup build and of a rebuild: after the restart no
 * event is counted twice or lost on any path, every file the manifest names verifies, and
 * building again is idempotent. And `verify`: 0 drift when healthy, the drift of a rollup
 * damaged behind valid checksums, and a refusal (never a number) for a flipped bit.
 */
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { rollupPath } from '../../src/storage/layout.ts';
import { damageRollupForTest, readSnapshot } from '../../src/testing.ts';
import { crashDuring } from '../support/crash.ts';
import { DAY_MS, simDb, T0, usage, type WireInput } from '../support/events.ts';

function event(i: number): WireInput {
  return usage(i, { timestamp_ms: T0 + (i % 4) * DAY_MS + i * 60_000 });
}

const QUERY = {
  from: T0,
  to: T0 + 10 * DAY_MS,
  group_by: ['account_id', 'product_id', 'meter_id', 'model_id', 'unit', 'day'],
  metrics: ['sum', 'count', 'min', 'max'],
};

async function answers(db: UsageDb) {
  return {
    raw: (await db.query({ ...QUERY, source: 'raw' })).rows,
    rollup: (await db.query({ ...QUERY, source: 'rollup' })).rows,
    auto: (await db.query({ ...QUERY, source: 'auto' })).rows,
  };
}

async function seeded(seed: number) {
  const sim = simDb(seed, { bucketCount: 2 });
  const db = await sim.open();
  for (let b = 0; b < 3; b++) {
    await db.ingest(Array.from({ length: 15 }, (_, k) => event(b * 15 + k)));
    await db.flush();
  }
  return { sim, db };
}

async function sweep(work: (db: UsageDb) => Promise<unknown>, before?: (db: UsageDb) => Promise<unknown>) {
  const clean = await seeded(7);
  if (before) await before(clean.db);
  const expected = (await answers(clean.db)).raw;
  const start = clean.sim.fs.callCount;
  await work(clean.db);
  const calls = clean.sim.fs.callCount - start;
  expect(calls).toBeGreaterThan(5);
  expect((await answers(clean.db)).auto).toEqual(expected);
  await clean.db.close();
  for (let n = 1; n <= calls; n++) {
    const { sim, db } = await seeded(7);
    if (before) await before(db);
    const reopened = await crashDuring(sim, db, n, work);
    const report = await reopened.check({ deep: true });
    expect(report.ok, `crash at call ${n}: ${report.problems.join('; ')}`).toBe(true);
    const a = await answers(reopened);
    expect(a.raw, `crash at call ${n}`).toEqual(expected);
    expect(a.rollup, `crash at call ${n}`).toEqual(expected);
    expect(a.auto, `crash at call ${n}`).toEqual(expected);
    // Building again finishes the job and changes no number.
    await reopened.rollup();
    expect((await reopened.verify({ from: T0, to: T0 + 10 * DAY_MS })).drift).toEqual([]);
    expect((await answers(reopened)).auto, `crash at call ${n}, after rollup`).toEqual(expected);
    await reopened.close();
  }
}

describe('rollup crash sweep', () => {
  it('a crash at every file-system call of a rollup build loses and doubles nothing', async () => {
    await sweep((db) => db.rollup());
  }, 300_000);

  it('a crash at every file-system call of a rebuild loses and doubles nothing', async () => {
    await sweep(
      (db) => db.rebuildRollups(T0, T0 + 2 * DAY_MS),
      (db) => db.rollup(),
    );
  }, 300_000);

  it('building twice is idempotent: no raw segment is covered twice', async () => {
    const { db } = await seeded(3);
    const first = await db.rollup();
    expect(first.segments).toBe(3);
    const second = await db.rollup();
    expect(second.segments).toBe(0);
    // Three hour files; one file per other level (day, month, meter_day, meter_month) summed
    // from the three builds' rows, so there is nothing to merge.
    expect(db.stats().rollups.segments).toBe(7);
    expect(db.stats().rollups.merges).toBe(0);
    expect(db.stats().rollups.uncoveredRawSegments).toBe(0);
    await db.close();
  });
});

describe('verify', () => {
  it('reports 0 drift when healthy and the drift of a damaged rollup', async () => {
    const { db } = await seeded(5);
    await db.rollup();
    const healthy = await db.verify({ from: T0, to: T0 + 10 * DAY_MS });
    expect(healthy).toMatchObject({ ok: true, drift: [] });
    expect(healthy.rollup_segments_read).toBeGreaterThan(0);
    // One rollup per level, damaged behind valid checksums (as a builder bug would leave it).
    const snapshot = readSnapshot(db);
    const entries = snapshot.rollups.entries;
    snapshot.release();
    for (const level of ['hour', 'day', 'month', 'meter_day', 'meter_month'] as const) {
      const target = entries.find((r) => r.level === level);
      expect(target).toBeDefined();
      await damageRollupForTest(db, target?.id ?? -1, (rows) => {
        rows.quantity.values[0] += 1;
      });
    }
    const months = await db.verify({ from: T0, to: Date.UTC(2026, 5, 1) });
    const days = await db.verify({ from: T0, to: T0 + 10 * DAY_MS });
    for (const v of [months, days]) {
      expect(v.ok).toBe(false);
      // The full-grain file of the level and its meter-grain file: one line each.
      expect(v.drift.map((d) => d.grain)).toEqual(['line', 'meter']);
      for (const d of v.drift)
        expect(BigInt(d.rollup?.quantity ?? '0') - BigInt(d.raw?.quantity ?? '0')).toBe(1n);
    }
    const byHour = { from: T0, to: T0 + 10 * DAY_MS, group_by: ['hour', 'account_id'] };
    expect((await db.query({ ...byHour, source: 'rollup' })).rows).not.toEqual(
      (await db.query({ ...byHour, source: 'raw' })).rows,
    );
    // Rebuilding from raw repairs it.
    await db.rebuildRollups(T0, T0 + 40 * DAY_MS);
    for (const range of [
      { from: T0, to: Date.UTC(2026, 5, 1) },
      { from: T0, to: T0 + 10 * DAY_MS },
    ])
      expect((await db.verify(range)).drift).toEqual([]);
    expect((await db.query({ ...byHour, source: 'rollup' })).rows).toEqual(
      (await db.query({ ...byHour, source: 'raw' })).rows,
    );
    await db.close();
  });

  it('a flipped bit in a rollup block is refused, never turned into a number', async () => {
    const { sim, db } = await seeded(6);
    await db.rollup();
    const ids = (await db.check()).segments.filter((s) => s.kind === 'rollup').map((s) => s.id);
    await db.close();
    for (const id of ids) {
      const bytes = await sim.fs.readFile(rollupPath('/db', id));
      bytes[6] ^= 0x10; // inside block 0
      await sim.fs.writeFile(rollupPath('/db', id), bytes, { sync: true });
    }
    const reopened = await sim.open();
    const err = await reopened.query({ ...QUERY, source: 'rollup' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageDbError);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_SEGMENT_CORRUPT');
    expect(
      (await reopened.verify({ from: T0, to: T0 + 10 * DAY_MS }).catch((e: unknown) => e)) instanceof
        UsageDbError,
    ).toBe(true);
    // The raw path still answers.
    expect((await reopened.query({ ...QUERY, source: 'raw' })).rows.length).toBeGreaterThan(0);
    const report = await reopened.check({ deep: true });
    expect(report.ok).toBe(false);
    await reopened.close();
  });
});
