/**
 * Through the library API (db.query, db.sql, db.events, wired in src/db.ts): same answers as
 * the reference, and concurrent queries (sharing the engine's scratch and caches) racing
 * ingest and flushes each see one consistent snapshot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonQuery } from '../../src/query/types.ts';
import {
  DAY,
  type Fixture,
  generateEvents,
  JUNE,
  MAY,
  openFixture,
  referenceQuery,
  toWire,
} from './fixtures.ts';

describe('db.query / db.sql / db.events', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await openFixture(generateEvents(41, 1200, 5));
  });
  afterAll(async () => {
    await fx.db.close();
  });

  it('answer like the reference', async () => {
    const q: JsonQuery = {
      from: MAY,
      to: JUNE,
      group_by: ['account_id', 'unit'],
      metrics: ['sum', 'count', 'max'],
      order_by: [{ key: 'sum', dir: 'desc' }],
      limit: 5,
    };
    expect((await fx.db.query(q)).rows).toEqual(referenceQuery(fx.events, q));
    const s = await fx.db.sql(
      `SELECT unit, SUM(quantity) FROM usage_events WHERE timestamp_ms >= ${MAY} AND timestamp_ms < ${JUNE} GROUP BY unit`,
    );
    expect(s.rows).toEqual(
      referenceQuery(fx.events, { from: MAY, to: JUNE, group_by: ['unit'], metrics: ['sum'] }).map((r) => [
        r.unit,
        r.sum,
      ]),
    );
    const page = await fx.db.events({ account_id: 'acct-a', from: MAY, to: JUNE, limit: 3 });
    expect(page.events).toHaveLength(3);
    expect(page.next_cursor).not.toBeNull();
    await expect(fx.db.query({ from: MAY })).rejects.toMatchObject({ code: 'USAGEDB_ERR_INVALID_QUERY' });
    await expect(fx.db.sql('SELECT * FROM usage_events')).rejects.toMatchObject({
      code: 'USAGEDB_ERR_UNSUPPORTED_SQL',
    });
  });

  it('concurrent queries racing ingest and flushes each see one consistent snapshot', async () => {
    const q: JsonQuery = {
      from: MAY,
      to: JUNE,
      group_by: ['meter_id', 'day'],
      metrics: ['sum', 'count', 'min'],
    };
    const more = generateEvents(42, 600, 5, 'race').filter((e) => e.kind === 'Usage');
    const known = [...fx.events];
    const runs: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      // The events present when the query starts are exactly what it must count.
      const snapshotEvents = [...known];
      runs.push(fx.db.query(q).then((r) => expect(r.rows).toEqual(referenceQuery(snapshotEvents, q))));
      const batch = more.slice(i * 100, (i + 1) * 100);
      const ingest = fx.db.ingest(batch.map(toWire));
      await ingest;
      known.push(...batch);
      if (i % 2 === 1) await fx.db.flush();
    }
    await Promise.all(runs);
    expect((await fx.db.query(q)).rows).toEqual(referenceQuery(known, q));
    expect((await fx.db.query({ from: MAY, to: MAY + DAY, metrics: ['count'] })).rows[0].count).toBe(
      known.filter((e) => e.timestamp_ms < MAY + DAY).length,
    );
  });
});
