import { describe, expect, it } from 'vitest';
import { simDb, usageBatch, T0, DAY_MS } from '../support/events.ts';

describe('rollups smoke', () => {
  it('auto equals raw after rollup', async () => {
    const sim = simDb(3);
    const db = await sim.open();
    await db.ingest(usageBatch(0, 2000));
    await db.flush();
    await db.ingest(usageBatch(2000, 1500));
    await db.flush();
    await db.ingest(usageBatch(3500, 100));
    const r = await db.rollup();
    expect(r.segments).toBe(2);
    const q = {
      from: T0,
      to: T0 + 31 * DAY_MS,
      group_by: ['account_id', 'product_id', 'meter_id', 'model_id', 'unit'],
      metrics: ['sum', 'count', 'min', 'max'],
    };
    const raw = await db.query({ ...q, source: 'raw' });
    const auto = await db.query({ ...q, source: 'auto' });
    expect(auto.stats.path).toBe('rollup');
    expect(auto.rows).toEqual(raw.rows);
    const q2 = {
      from: T0 + 3 * DAY_MS + 1234567,
      to: T0 + 20 * DAY_MS - 7654321,
      group_by: ['day', 'kind', 'source'],
      metrics: ['sum', 'count', 'min', 'max'],
    };
    expect((await db.query({ ...q2, source: 'auto' })).rows).toEqual(
      (await db.query({ ...q2, source: 'raw' })).rows,
    );
    const v = await db.verify({ from: T0, to: T0 + 40 * DAY_MS });
    expect(v.ok).toBe(true);
    expect(v.rollup_segments_read).toBeGreaterThan(0);
    await db.compact();
    expect((await db.query({ ...q, source: 'auto' })).rows).toEqual(raw.rows);
    console.log(db.stats().rollups);
    await db.close();
    const db2 = await sim.open();
    expect((await db2.query({ ...q, source: 'auto' })).rows).toEqual(raw.rows);
    await db2.close();
  });
});
