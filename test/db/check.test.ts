import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
import { segmentFileName } from '../../src/storage/layout.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { simDb, usage, usageBatch } from '../support/events.ts';

describe('check and inspect-segment', () => {
  it('lists every segment; deep finds a flipped bit that the shallow check cannot', async () => {
    const sim = simDb();
    const db = await sim.open({ logger: silentLogger });
    await db.ingest(usageBatch(0, 300));
    await db.flush();
    await db.ingest([
      ...usageBatch(300, 50),
      {
        ...usage(400),
        kind: 'Retraction',
        quantity: undefined,
        correction_ref: { original_event_id: 'evt_1', reason: 'refund' },
        event_id: 'r1',
        account_id: 'acct_1',
        product_id: 'embeddings',
        meter_id: 'tokens.output',
        unit: 'tokens',
      },
    ]);
    await db.flush();
    const clean = await db.check({ deep: true });
    expect(clean.ok).toBe(true);
    expect(clean.segments.map((s) => s.id)).toEqual([1, 2]);
    expect(clean.manifest.format_version).toBe(2);
    sim.fs.flipBit(`/db/raw/${segmentFileName(1)}`, 200, 3);
    expect((await db.check()).ok).toBe(true);
    const deep = await db.check({ deep: true });
    expect(deep.ok).toBe(false);
    expect(deep.segments.find((s) => s.id === 1)?.ok).toBe(false);
    expect(deep.problems[0]).toMatch(/segment 1/);
    await db.close();
  });

  it('inspects a segment: partitions, rows, bytes per column; an unknown id is NOT_FOUND', async () => {
    const sim = simDb();
    const db = await sim.open({ logger: silentLogger });
    await db.ingest(usageBatch(0, 500));
    await db.flush();
    const s = await db.inspectSegment(1);
    expect(s.rows).toBe(500);
    expect(s.partitions.reduce((n, p) => n + p.rows, 0)).toBe(500);
    expect(Object.keys(s.bytes_by_column)).toContain('event_id');
    expect(s.id_filter.bits).toBeGreaterThan(0);
    const err = await db.inspectSegment(99).catch((x: unknown) => x);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_NOT_FOUND');
    await db.close();
  });
});
