/**
 * Crash-point enumeration of a period close: a crash at every file-system call of
 * `periods.close` (its flush, rollup build and manifest commit), then a restart. Either the
 * period is closed with exactly the snapshot a clean close freezes, or it is still open and
 * closes cleanly now; every acknowledged event is stored exactly once; after the close a new
 * Usage event of that month is refused (`period_closed`) and a retraction is an adjustment.
 */
import { describe, expect, it } from 'vitest';
import type { ClosedPeriodView, UsageDb } from '../../src/db.ts';
import { crashDuring } from '../support/crash.ts';
import { DAY_MS, simDb, T0, usage, type WireInput } from '../support/events.ts';

const ACCOUNT = 'acct_3';
const PERIOD = '2026-05';

function event(i: number): WireInput {
  return usage(i, { account_id: ACCOUNT, timestamp_ms: T0 + (i % 20) * DAY_MS + i * 1000 });
}

async function prepare(seed: number) {
  const sim = simDb(seed, { bucketCount: 2 });
  const db = await sim.open();
  await db.ingest(Array.from({ length: 30 }, (_, i) => event(i)));
  await db.flush();
  await db.rollup();
  // Acknowledged, not flushed: the close must take these in.
  await db.ingest(Array.from({ length: 12 }, (_, i) => event(30 + i)));
  return { sim, db };
}

async function storedCounts(db: UsageDb): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let cursor: string | null = null;
  do {
    const page: Awaited<ReturnType<UsageDb['events']>> = await db.events({
      account_id: ACCOUNT,
      from: T0,
      to: T0 + 31 * DAY_MS,
      limit: 1000,
      ...(cursor === null ? {} : { cursor }),
    });
    for (const e of page.events) counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return counts;
}

describe('period close crash sweep', () => {
  it('a crash at every file-system call of a close: closed with the clean snapshot, or open and closable', async () => {
    const clean = await prepare(9);
    const start = clean.sim.fs.callCount;
    const expected = await clean.db.periods.close(ACCOUNT, PERIOD);
    const calls = clean.sim.fs.callCount - start;
    expect(calls).toBeGreaterThan(5);
    expect(expected.snapshot.lines.reduce((n, l) => n + l.event_count, 0)).toBe(42);
    await clean.db.close();

    let closedAfterCrash = 0;
    for (let n = 1; n <= calls; n++) {
      const { sim, db } = await prepare(9);
      const reopened = await crashDuring(sim, db, n, (d) => d.periods.close(ACCOUNT, PERIOD));
      const where = `crash at call ${n} of ${calls}`;
      const counts = await storedCounts(reopened);
      expect(counts.size, where).toBe(42);
      for (const [id, c] of counts) expect(c, `${where}: ${id}`).toBe(1);
      let view = await reopened.periods.get(ACCOUNT, PERIOD);
      if (view.status === 'closed') closedAfterCrash++;
      else view = await reopened.periods.close(ACCOUNT, PERIOD);
      const closed = view as ClosedPeriodView;
      expect(closed.snapshot.lines, where).toEqual(expected.snapshot.lines);
      expect(closed.snapshot.evidence_digest, where).toBe(expected.snapshot.evidence_digest);
      // Closed means closed: new usage refused, a late retraction is an adjustment.
      const late = await reopened.ingest([event(100)]);
      expect(late.errors[0]?.reason, where).toBe('period_closed');
      const original = event(0);
      const retraction = await reopened.ingest([
        {
          ...original,
          event_id: 'retract-0',
          kind: 'Retraction',
          correction_ref: { original_event_id: original.event_id, reason: 'refund' },
          quantity: String(-(original.quantity as number)),
        },
      ]);
      expect(retraction.accepted, where).toBe(1);
      const after = (await reopened.periods.get(ACCOUNT, PERIOD)) as ClosedPeriodView;
      expect(after.snapshot.lines, where).toEqual(expected.snapshot.lines);
      expect(
        after.adjustments.map((e) => e.event_id),
        where,
      ).toEqual(['retract-0']);
      await reopened.close();
    }
    // The sweep crossed the commit: some crashes left the period closed, some open.
    expect(closedAfterCrash).toBeGreaterThan(0);
    expect(closedAfterCrash).toBeLessThan(calls);
  }, 300_000);
});
