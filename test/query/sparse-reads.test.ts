/**
 * Queries read only the chunks of the blocks they need: on a database larger than every
 * cache, a one-account query reads a small share of the segment bytes, and never a whole file.
 */
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { DAY_MS, simDb, T0, usage } from '../support/events.ts';
import { countReads } from '../support/reads.ts';

async function fill(db: UsageDb): Promise<void> {
  for (let f = 0; f < 4; f++) {
    const batch = Array.from({ length: 5_000 }, (_, k) => {
      const i = f * 5_000 + k;
      return usage(i, { account_id: `acct_${i % 97}`, timestamp_ms: T0 + (i % 28) * DAY_MS + i });
    });
    for (let i = 0; i < batch.length; i += 1_000) await db.ingest(batch.slice(i, i + 1_000));
    await db.flush();
  }
}

describe('sparse reads', () => {
  it('a one-account query reads a small share of the segment bytes and no whole file', async () => {
    const sim = simDb(7, {
      logger: silentLogger,
      limits: { queryCacheBytes: 64 * 1024, segmentCacheBytes: 64 * 1024, blockRows: 256 },
    });
    const db = await sim.open();
    await fill(db);
    const q = { account_id: 'acct_5', from: T0, to: T0 + 30 * DAY_MS, group_by: ['meter_id'] };
    const expected = await db.query(q);
    const totalBytes = (await db.check()).segments.reduce((n, s) => n + s.size_bytes, 0);
    await db.close();

    const again = await sim.open();
    const counter = countReads(sim.fs, '/raw/');
    const result = await again.query(q);
    expect(result.rows).toEqual(expected.rows);
    expect(counter.wholeFiles).toEqual([]);
    // Each file's footer is read once (a 64 KiB tail read); the rest are the chunks needed.
    const footers = 4 * 64 * 1024;
    expect(counter.bytes).toBeLessThan(footers + totalBytes * 0.1);
    // The audit listing of the same account reads a small share too, and answers in full.
    const page = await again.events({ account_id: 'acct_5', from: T0, to: T0 + 30 * DAY_MS, limit: 10_000 });
    expect(page.events.length).toBe(Number(expected.rows.reduce((n, r) => n + Number(r.count), 0)));
    expect(counter.wholeFiles).toEqual([]);
    expect(counter.bytes).toBeLessThan(footers + totalBytes * 0.3);
    await again.close();
  });
});
