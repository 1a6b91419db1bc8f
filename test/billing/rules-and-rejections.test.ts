/**
 * Every rejection reason and every correction rule, end to end: the ingest answer, and the
 * rejection log entry (what was sent, why, when) that lookups and `rejections()` return.
 */
import { describe, expect, it } from 'vitest';
import { simDb } from '../support/events.ts';
import { correction, ev, HOUR, JUNE, retraction } from './helpers.ts';

describe('correction rules and rejection reasons', () => {
  it('each reason is answered per event and lands in the rejection log', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([
      ev('u1'),
      ev('u2'),
      ev('u3', { quantity: 10 }),
      ev('closed-u', { account_id: 'closed' }),
    ]);
    await db.ingest([retraction('r-u3', 'u3')]);
    await db.periods.close('closed', '2026-05');
    const cases: [string, unknown][] = [
      ['invalid_event', 'not an object'],
      ['unknown_field', ev('x1', { colour: 'red' })],
      ['missing_field', { ...ev('x2'), account_id: undefined }],
      ['invalid_field', ev('x3', { product_id: '' })],
      ['invalid_kind', ev('x4', { kind: 'Refund' })],
      ['invalid_quantity', ev('x5', { quantity: 1.5 })],
      ['negative_quantity', ev('x6', { quantity: -1 })],
      ['invalid_timestamp', ev('x7', { timestamp_ms: -3 })],
      ['timestamp_in_future', ev('x8', { timestamp_ms: JUNE + 90 * 24 * HOUR })],
      [
        'too_many_dimensions',
        ev('x9', { dimensions: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }),
      ],
      ['invalid_dimensions', ev('x10', { dimensions: { a: 1 } })],
      ['missing_correction_ref', ev('x11', { kind: 'Correction' })],
      ['unexpected_correction_ref', ev('x12', { correction_ref: { original_event_id: 'u1', reason: 'r' } })],
      ['period_closed', ev('x13', { account_id: 'closed' })],
      ['unknown_original', correction('x14', 'missing', 5)],
      ['correction_mismatch', correction('x15', 'u1', 5, { meter_id: 'tokens.output' })],
      ['correction_mismatch', correction('x16', 'r-u3', 5)],
      ['already_retracted', retraction('x17', 'u3')],
      ['retraction_quantity_mismatch', retraction('x18', 'u2', { quantity: -1 })],
      ['conflict', ev('u1', { quantity: 101 })],
    ];
    const result = await db.ingest(cases.map(([, e]) => e));
    expect(result.accepted).toBe(0);
    expect(result.errors.map((e) => e.reason)).toEqual(cases.map(([reason]) => reason));
    const page = await db.rejections({ limit: 1000 });
    expect(page.rejections.map((r) => r.reason)).toEqual(cases.map(([reason]) => reason));
    expect(page.rejections.map((r) => r.index)).toEqual(cases.map((_, i) => i));
    expect(page.rejections[0]).toMatchObject({ event_id: null, event: 'not an object', account_id: null });
    expect(page.rejections[5]).toMatchObject({
      event_id: 'x5',
      event: { quantity: 1.5 },
      account_id: 'acme',
    });
    expect(page.rejections.at(-1)).toMatchObject({ status: 'conflict', event_id: 'u1' });
    expect(page.next_cursor).toBeNull();
    await db.close();
  });

  it('accepted corrections: a signed delta, a retraction filled in, a correction of a correction is refused', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([ev('u1', { quantity: 40 }), ev('u2', { quantity: 9 })]);
    const r = await db.ingest([
      correction('c1', 'u1', -15),
      retraction('r2', 'u2'),
      retraction('r2b', 'u2'),
      correction('c2', 'c1', 1),
    ]);
    expect(r.accepted).toBe(2);
    expect(r.errors.map((e) => [e.event_id, e.reason])).toEqual([
      ['r2b', 'already_retracted'],
      ['c2', 'correction_mismatch'],
    ]);
    // A retry of the accepted retraction is a duplicate, not already_retracted.
    expect(await db.ingest([retraction('r2', 'u2')])).toMatchObject({ duplicates: 1, rejected: 0 });
    const lines = (await db.periods.get('acme', '2026-05')).lines;
    expect(lines).toEqual([
      {
        product_id: 'llm-api',
        meter_id: 'tokens.input',
        model_id: 'gpt-x',
        unit: 'tokens',
        quantity: '25',
        event_count: 4,
      },
    ]);
    await db.close();
  });
});
