import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
import { readSnapshot } from '../../src/testing.ts';
import { simDb } from '../support/events.ts';
import { correction, ev, HOUR, JUNE, MAY, retraction } from './helpers.ts';

describe('explain', () => {
  it('provenance names exactly the segments read, the memtable rows counted, and the corrections', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([
      ev('u1'),
      ev('u2', { timestamp_ms: MAY + 40 * HOUR }),
      ev('o1', { account_id: 'other' }),
    ]);
    await db.flush(); // segment 1: acme May + other
    await db.ingest([ev('o2', { account_id: 'other' }), ev('o3', { account_id: 'other2' })]);
    await db.flush(); // segment 2: other accounts only
    await db.ingest([ev('j1', { timestamp_ms: JUNE + HOUR })]);
    await db.flush(); // segment 3: acme, June only
    await db.ingest([
      correction('c1', 'u1', -30, { timestamp_ms: MAY + 2 * HOUR }),
      ev('u3', { quantity: 1 }),
    ]);
    await db.flush(); // segment 4: acme May
    await db.ingest([retraction('r1', 'u2', { timestamp_ms: MAY + 41 * HOUR }), ev('m1', { quantity: 5 })]);
    const x = await db.explain({
      account_id: 'acme',
      from: '2026-05-01T00:00:00Z',
      to: '2026-06-01T00:00:00Z',
    });
    expect(x.provenance).toEqual({ raw_segment_ids: [1, 4], rollup_segment_ids: [], memtable_rows: 2 });
    expect(x.lines).toEqual([
      {
        product_id: 'llm-api',
        meter_id: 'tokens.input',
        model_id: 'gpt-x',
        unit: 'tokens',
        quantity: String(100 + 100 - 30 + 1 - 100 + 5),
        event_count: 6,
      },
    ]);
    expect(x.corrections.map((c) => [c.event_id, c.kind, c.original_event_id, c.quantity])).toEqual([
      ['c1', 'Correction', 'u1', '-30'],
      ['r1', 'Retraction', 'u2', '-100'],
    ]);
    expect(x.corrections[0]).toMatchObject({
      reason: 'recount',
      meter_id: 'tokens.input',
      model_id: 'gpt-x',
    });
    // With rollups: the month's rollups of exactly segments 1 and 4 are read instead of them.
    await db.rollup();
    const monthRollupsOf = (rawIds: number[]) => {
      const snapshot = readSnapshot(db);
      try {
        return (snapshot.rollups?.entries ?? [])
          .filter((r) => r.level === 'month' && r.covers.some((id) => rawIds.includes(id)))
          .map((r) => r.id)
          .sort((a, b) => a - b);
      } finally {
        snapshot.release();
      }
    };
    const rolled = await db.explain({ account_id: 'acme', from: MAY, to: JUNE });
    expect(rolled.lines).toEqual(x.lines);
    expect(rolled.provenance.raw_segment_ids).toEqual([]);
    expect(rolled.provenance.rollup_segment_ids).toEqual(monthRollupsOf([1, 4]));
    // One month file (the rollups of both raw segments merged) serves the month.
    expect(rolled.provenance.rollup_segment_ids).toHaveLength(1);
    // A range that is not whole hours reads its edges raw.
    const edges = await db.explain({ account_id: 'acme', from: MAY, to: MAY + 2 * HOUR + 1 });
    expect(edges.provenance.raw_segment_ids).toEqual([4]); // c1, at MAY + 2 h, in segment 4
    expect(edges.provenance.rollup_segment_ids.length).toBeGreaterThan(0);
    // After a flush and a compaction, the numbers stay and provenance names the merged file's rollup.
    await db.flush();
    await db.compact();
    const after = await db.explain({ account_id: 'acme', from: MAY, to: JUNE });
    const live = (await db.check()).segments.filter((s) => s.kind === 'raw').map((s) => s.id);
    expect(after.lines).toEqual(x.lines);
    expect(after.corrections).toEqual(x.corrections);
    expect(after.provenance.memtable_rows).toBe(0);
    expect(after.provenance.raw_segment_ids).toEqual([]);
    expect(after.provenance.rollup_segment_ids).toEqual(monthRollupsOf(live));
    expect(after.provenance.rollup_segment_ids).not.toEqual(rolled.provenance.rollup_segment_ids);
    const rawAfter = await db.explain({ account_id: 'acme', from: MAY, to: MAY + 2 * HOUR + 1 });
    expect(rawAfter.provenance.raw_segment_ids).toEqual(live);
    // An account with nothing in range reads nothing.
    const none = await db.explain({ account_id: 'nobody', from: MAY, to: JUNE });
    expect(none).toMatchObject({
      lines: [],
      corrections: [],
      provenance: { raw_segment_ids: [], memtable_rows: 0 },
    });
    const err = await db.explain({ account_id: 'acme', from: JUNE, to: MAY }).catch((e: unknown) => e);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_QUERY');
    await db.close();
  });
});
