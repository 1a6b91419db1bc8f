import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
import { simDb } from '../support/events.ts';
import { correction, ev, HOUR, MAY, retraction } from './helpers.ts';

describe('lookupEvent', () => {
  it('stored in the memtable, then in a segment; its period, line, and whether the period is closed', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([ev('u1', { model_id: null })]);
    const inMemory = await db.lookupEvent('u1');
    expect(inMemory).toMatchObject({
      event_id: 'u1',
      status: 'stored',
      location: 'memtable',
      segment_id: null,
      period: '2026-05',
      period_closed: false,
      line: { product_id: 'llm-api', meter_id: 'tokens.input', model_id: null, unit: 'tokens' },
      retracted_by: null,
      rejections: [],
    });
    expect(inMemory.event?.quantity).toBe('100');
    await db.flush();
    await db.periods.close('acme', '2026-05');
    expect(await db.lookupEvent('u1')).toMatchObject({
      status: 'stored',
      location: 'segment',
      segment_id: 1,
      period_closed: true,
    });
    await db.close();
  });

  it('retracted: by which Retraction, in memory, after a flush, a compaction and a restart', async () => {
    const sim = simDb();
    let db = await sim.open();
    await db.ingest([ev('u1'), ev('u2')]);
    await db.flush();
    await db.ingest([retraction('r1', 'u1', { timestamp_ms: MAY + 3 * HOUR })]);
    const expected = {
      status: 'retracted',
      retracted_by: { event_id: 'r1', timestamp_ms: MAY + 3 * HOUR, reason: 'refund' },
    };
    expect(await db.lookupEvent('u1')).toMatchObject(expected);
    expect(await db.lookupEvent('u2')).toMatchObject({ status: 'stored', retracted_by: null });
    await db.flush();
    expect(await db.lookupEvent('u1')).toMatchObject({ ...expected, segment_id: 1 });
    await db.compact();
    const compacted = await db.lookupEvent('u1');
    expect(compacted).toMatchObject(expected);
    expect(compacted.segment_id).toBeGreaterThan(2);
    await db.close();
    db = await sim.open();
    expect(await db.lookupEvent('u1')).toMatchObject({ ...expected, segment_id: compacted.segment_id });
    expect(await db.lookupEvent('r1')).toMatchObject({ status: 'stored', event: { kind: 'Retraction' } });
    await db.close();
  });

  it('rejected (with what was sent), conflict, unknown — also after a restart', async () => {
    const sim = simDb();
    let db = await sim.open();
    await db.ingest([ev('u1')]);
    sim.clock.advance(1000);
    const sentAt = sim.clock.nowMs();
    await db.ingest([ev('bad', { quantity: -5 }), ev('u1', { quantity: 999 }), correction('c1', 'nope', 3)]);
    const check = async () => {
      expect(await db.lookupEvent('bad')).toMatchObject({
        status: 'rejected',
        reason: 'negative_quantity',
        received_at_ms: sentAt,
        rejections: [{ index: 0, status: 'rejected', reason: 'negative_quantity', event: { quantity: -5 } }],
      });
      expect(await db.lookupEvent('c1')).toMatchObject({ status: 'rejected', reason: 'unknown_original' });
      const conflict = await db.lookupEvent('u1');
      expect(conflict).toMatchObject({
        status: 'conflict',
        location: expect.any(String),
        event: { quantity: '100' },
      });
      expect(conflict.rejections).toMatchObject([{ index: 1, status: 'conflict', event: { quantity: 999 } }]);
      expect(await db.lookupEvent('never-sent')).toEqual({
        event_id: 'never-sent',
        status: 'unknown',
        rejections: [],
      });
    };
    await check();
    await db.close();
    db = await sim.open();
    await check();
    const err = await db.lookupEvent('').catch((e: unknown) => e);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
    await db.close();
  });
});
