/**
 * A crash at every file-system call of a compaction (and of the flushes and checkpoint around
 * it): after the restart every acknowledged event is there exactly once, nothing is invented,
 * every file the manifest names exists and verifies, and the answers equal the reference.
 */
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { crashDuring } from '../support/crash.ts';
import { DAY_MS, simDb, T0, usage, type WireInput } from '../support/events.ts';
import { scanAccount } from '../support/scan.ts';

const ACCOUNTS = Array.from({ length: 7 }, (_, i) => `acct_${i}`);

function small(i: number): WireInput {
  return usage(i, { timestamp_ms: T0 + (i % 3) * DAY_MS + i });
}

async function idCounts(db: UsageDb): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const a of ACCOUNTS) {
    for (const e of await scanAccount(db, a, 0, Number.MAX_SAFE_INTEGER)) {
      counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
    }
  }
  return counts;
}

describe('compaction crash sweep', () => {
  it('a crash at every file-system call of ingest, flushes and a compaction loses nothing and duplicates nothing', async () => {
    const events = Array.from({ length: 36 }, (_, i) => small(i));
    const submitted = new Set(events.map((e) => e.event_id as string));
    const prepare = async (db: UsageDb, acked: Set<string>) => {
      for (let b = 0; b < 3; b++) {
        const batch = events.slice(b * 12, b * 12 + 12);
        await db.ingest(batch);
        for (const e of batch) acked.add(e.event_id as string);
        await db.flush();
      }
    };
    // The clean run: how many calls the compaction makes.
    const clean = simDb(5, { bucketCount: 2, logger: silentLogger });
    const cleanDb = await clean.open();
    await prepare(cleanDb, new Set());
    const start = clean.fs.callCount;
    expect(await cleanDb.compact()).toMatchObject({ inputSegments: 3, outputRows: 36 });
    await cleanDb.close();
    const calls = clean.fs.callCount - start;
    expect(calls).toBeGreaterThan(10);
    const expected = await (async () => {
      const db = await clean.open();
      const q = await db.query({ from: T0 - DAY_MS, to: T0 + 10 * DAY_MS, group_by: ['account_id'] });
      await db.close();
      return q.rows;
    })();

    for (let n = 1; n <= calls; n++) {
      const sim = simDb(5, { bucketCount: 2, logger: silentLogger });
      const acked = new Set<string>();
      const db = await sim.open();
      await prepare(db, acked);
      const reopened = await crashDuring(sim, db, n, (d) => d.compact());
      const counts = await idCounts(reopened);
      for (const [id, count] of counts) {
        expect(count, `crash at call ${n}: ${id} stored ${count} times`).toBe(1);
        expect(submitted.has(id), `crash at call ${n}: invented ${id}`).toBe(true);
      }
      for (const id of acked)
        expect(counts.has(id), `crash at call ${n}: acknowledged ${id} lost`).toBe(true);
      const report = await reopened.check({ deep: true });
      expect(report.ok, `crash at call ${n}: ${report.problems.join('; ')}`).toBe(true);
      const q = await reopened.query({ from: T0 - DAY_MS, to: T0 + 10 * DAY_MS, group_by: ['account_id'] });
      expect(q.rows, `crash at call ${n}`).toEqual(expected);
      // Retries are still duplicates, whichever side of the commit the crash fell on.
      expect((await reopened.ingest(events)).duplicates, `crash at call ${n}`).toBe(36);
      await reopened.close();
    }
  }, 300_000);
});
