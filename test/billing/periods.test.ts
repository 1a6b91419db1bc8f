import { describe, expect, it } from 'vitest';
import type { ClosedPeriodView, OpenPeriodView } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { simDb } from '../support/events.ts';
import { correction, ev, HOUR, JUNE, MAY, retraction } from './helpers.ts';

const line = (quantity: string, event_count: number, extra: Record<string, unknown> = {}) => ({
  product_id: 'llm-api',
  meter_id: 'tokens.input',
  model_id: 'gpt-x',
  unit: 'tokens',
  quantity,
  event_count,
  ...extra,
});

describe('periods', () => {
  it('open → close → late retraction → adjustments and carried lines → reopen', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([
      ev('u1'),
      ev('u2', { quantity: 250 }),
      ev('u3', { meter_id: 'tokens.output', quantity: 7 }),
    ]);
    await db.ingest([ev('j1', { timestamp_ms: JUNE + HOUR, quantity: 5 })]);
    const open = (await db.periods.get('acme', '2026-05')) as OpenPeriodView;
    expect(open).toEqual({
      account_id: 'acme',
      period: '2026-05',
      status: 'open',
      lines: [line('350', 2), line('7', 1, { meter_id: 'tokens.output' })],
      carried_adjustments: [],
    });
    const closed = await db.periods.close('acme', '2026-05');
    expect(closed.status).toBe('closed');
    expect(closed.snapshot.lines).toEqual(open.lines);
    expect(closed.lines).toEqual(open.lines);
    expect(closed.snapshot.segment_ids).toEqual([1]);
    expect(closed.snapshot.closed_at_ms).toBe(sim.clock.nowMs());
    // Rollups built at close reach the end of June's first hour: capped at the period's end.
    expect(closed.snapshot.watermark_ms).toBe(JUNE);
    expect(closed.snapshot.evidence_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(closed.adjustments).toEqual([]);
    expect(closed.net_lines).toEqual(open.lines);

    // A new Usage event into the closed month is refused; a retry of a billed one is a duplicate.
    const late = await db.ingest([ev('u4'), ev('u1')]);
    expect(late).toMatchObject({ accepted: 0, duplicates: 1, rejected: 1 });
    expect(late.errors[0]).toMatchObject({
      index: 0,
      event_id: 'u4',
      status: 'rejected',
      reason: 'period_closed',
    });

    // A late retraction is accepted: an adjustment of May, carried into June.
    const r = await db.ingest([retraction('r1', 'u2', { timestamp_ms: MAY + 2 * HOUR })]);
    expect(r.accepted).toBe(1);
    const after = (await db.periods.get('acme', '2026-05')) as ClosedPeriodView;
    expect(after.snapshot).toEqual(closed.snapshot);
    expect(after.adjustments.map((e) => e.event_id)).toEqual(['r1']);
    expect(after.adjustment_lines).toEqual([line('-250', 1)]);
    expect(after.net_lines).toEqual([line('100', 3), line('7', 1, { meter_id: 'tokens.output' })]);
    const june = (await db.periods.get('acme', '2026-06')) as OpenPeriodView;
    expect(june.lines).toEqual([line('5', 1)]);
    expect(june.carried_adjustments).toEqual([{ period: '2026-05', ...line('-250', 1) }]);

    // State conflicts.
    const again = await db.periods.close('acme', '2026-05').catch((e: unknown) => e);
    expect((again as UsageDbError).code).toBe('USAGEDB_ERR_STATE_CONFLICT');
    const reopenOpen = await db.periods.reopen('acme', '2026-06').catch((e: unknown) => e);
    expect((reopenOpen as UsageDbError).code).toBe('USAGEDB_ERR_STATE_CONFLICT');

    // Reopen: the snapshot is gone, the month is live again (with the retraction), Usage flows.
    const reopened = await db.periods.reopen('acme', '2026-05');
    expect(reopened).toEqual({
      account_id: 'acme',
      period: '2026-05',
      status: 'open',
      lines: [line('100', 3), line('7', 1, { meter_id: 'tokens.output' })],
      carried_adjustments: [],
    });
    expect((await db.periods.get('acme', '2026-06')) as OpenPeriodView).toMatchObject({
      carried_adjustments: [],
    });
    expect((await db.ingest([ev('u4')])).accepted).toBe(1);
    await db.close();
  });

  it('a correction into a closed period adjusts it; the next open month after two closed ones carries both', async () => {
    const sim = simDb();
    sim.clock.set(Date.UTC(2026, 6, 1));
    const db = await sim.open();
    await db.ingest([ev('u1'), ev('j1', { timestamp_ms: JUNE + HOUR, quantity: 40 })]);
    await db.periods.close('acme', '2026-05');
    await db.periods.close('acme', '2026-06');
    await db.ingest([
      correction('c1', 'u1', -30, { timestamp_ms: MAY + 5 }),
      correction('c2', 'j1', 2, { timestamp_ms: JUNE + 5 }),
    ]);
    const may = (await db.periods.get('acme', '2026-05')) as ClosedPeriodView;
    expect(may.adjustment_lines).toEqual([line('-30', 1)]);
    expect(may.net_lines).toEqual([line('70', 2)]);
    const july = (await db.periods.get('acme', '2026-07')) as OpenPeriodView;
    expect(july.lines).toEqual([]);
    expect(july.carried_adjustments).toEqual([
      { period: '2026-05', ...line('-30', 1) },
      { period: '2026-06', ...line('2', 1) },
    ]);
    // Other accounts are not affected by acme's close.
    expect((await db.ingest([ev('x1', { account_id: 'other' })])).accepted).toBe(1);
    await db.close();
  });

  it('corrections present before the close are in the snapshot, not adjustments', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([ev('u1'), correction('c0', 'u1', 5)]);
    const closed = await db.periods.close('acme', '2026-05');
    expect(closed.snapshot.lines).toEqual([line('105', 2)]);
    expect(closed.adjustments).toEqual([]);
    await db.close();
  });

  it('rejects malformed periods and accounts', async () => {
    const sim = simDb();
    const db = await sim.open();
    for (const bad of ['2026-13', '2026-5', 'May', '1969-12']) {
      const err = await db.periods.get('acme', bad).catch((e: unknown) => e);
      expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
    }
    const err = await db.periods.close('', '2026-05').catch((e: unknown) => e);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
    await db.close();
  });

  it('a closed period never changes under a rollup rebuild, compaction or restart', async () => {
    const sim = simDb();
    let db = await sim.open();
    for (let batch = 0; batch < 4; batch++) {
      await db.ingest(
        Array.from({ length: 50 }, (_, i) =>
          ev(`b${batch}_${i}`, {
            quantity: i + batch,
            timestamp_ms: MAY + (batch * 50 + i) * HOUR,
            model_id: i % 3 === 0 ? null : 'm',
          }),
        ),
      );
      await db.flush();
    }
    const closed = await db.periods.close('acme', '2026-05');
    expect(closed.snapshot.segment_ids).toEqual([1, 2, 3, 4]);
    // The close built rollups and read the lines from them: the manifest names both sets.
    const current = new TextDecoder().decode(await sim.fs.readFile('/db/manifest/CURRENT')).trim();
    const manifest = JSON.parse(
      new TextDecoder().decode(await sim.fs.readFile(`/db/manifest/${current}`)),
    ) as {
      manifest: { periods: { raw_segment_ids: number[]; rollup_segment_ids: number[] }[] };
    };
    expect(manifest.manifest.periods[0].raw_segment_ids).toEqual([1, 2, 3, 4]);
    // The month files of the four raw segments, merged into one.
    expect(manifest.manifest.periods[0].rollup_segment_ids).toHaveLength(1);
    await db.ingest([retraction('r1', 'b1_3', { model_id: 'm', timestamp_ms: MAY + 7 })]);
    const before = await db.periods.get('acme', '2026-05');
    await db.rebuildRollups(MAY, JUNE);
    expect(await db.periods.get('acme', '2026-05')).toEqual(before);
    await db.compact();
    expect((await db.check()).segments.map((s) => s.id)).not.toContain(1);
    expect(await db.periods.get('acme', '2026-05')).toEqual(before);
    await db.close();
    db = await sim.open();
    expect(await db.periods.get('acme', '2026-05')).toEqual(before);
    expect((await db.ingest([ev('late')])).errors[0]?.reason).toBe('period_closed');
    await db.close();
  });
});
