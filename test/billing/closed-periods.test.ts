import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClosedPeriods } from '../../src/billing/closed-periods.ts';
import { nextPeriod, periodOf, periodRange } from '../../src/billing/lines.ts';
import type { PeriodSnapshotEntry } from '../../src/storage/manifest.ts';

const entry = (account_id: string, period: string): PeriodSnapshotEntry => ({
  account_id,
  period,
  closed_at_ms: 1,
  watermark_ms: 0,
  raw_segment_ids: [],
  rollup_segment_ids: [],
  evidence_digest: '',
  lines: [],
  correction_event_ids: [],
});

describe('periods and the admission gate', () => {
  it('a timestamp is in a closed period exactly when its UTC month is closed for that account', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom('a', 'b'),
            fc.integer({ min: 2020, max: 2030 }),
            fc.integer({ min: 1, max: 12 }),
          ),
        ),
        fc.constantFrom('a', 'b', 'c'),
        fc.integer({ min: Date.UTC(2019, 11, 31), max: Date.UTC(2031, 0, 2) }),
        (closed, account, ts) => {
          const entries = closed.map(([a, y, m]) => entry(a, `${y}-${String(m).padStart(2, '0')}`));
          const gate = new ClosedPeriods(entries);
          const expected = entries.some((e) => e.account_id === account && e.period === periodOf(ts));
          expect(gate.isClosed(account, ts)).toBe(expected);
        },
      ),
    );
  });

  it('month ranges are half-open and follow each other', () => {
    expect(periodRange('2026-12')).toEqual({ fromMs: Date.UTC(2026, 11, 1), toMs: Date.UTC(2027, 0, 1) });
    expect(nextPeriod('2026-12')).toBe('2027-01');
    expect(periodOf(Date.UTC(2026, 4, 1) - 1)).toBe('2026-04');
    expect(periodOf(Date.UTC(2026, 4, 1))).toBe('2026-05');
  });
});
