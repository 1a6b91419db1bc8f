import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
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
    // After a flush and a compaction, the numbers stay and provenance names the merged file.
    await db.flush();
    await db.compact();
    const after = await db.explain({ account_id: 'acme', from: MAY, to: JUNE });
    const live = (await db.check()).segments.map((s) => s.id);
    expect(after.lines).toEqual(x.lines);
    expect(after.corrections).toEqual(x.corrections);
    expect(after.provenance.memtable_rows).toBe(0);
    expect(after.provenance.raw_segment_ids).toEqual(live);
    expect(after.provenance.raw_segment_ids).not.toContain(1);
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
