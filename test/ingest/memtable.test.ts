import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Memtable } from '../../src/ingest/memtable.ts';
import type { UsageEvent } from '../../src/model/event.ts';
import { realisticRows } from '../storage/segment/generate-columns.ts';

function events(n: number, seed: number): UsageEvent[] {
  return realisticRows({ rows: n, seed }).map((r) => ({
    event_id: r.event_id,
    kind: 'Usage',
    correction_ref: null,
    account_id: r.account_id,
    subscription_id: r.subscription_id,
    product_id: r.product_id,
    meter_id: r.meter_id,
    model_id: r.model_id,
    unit: r.unit,
    source: r.source,
    timestamp_ms: r.timestamp_ms,
    quantity: r.quantity,
    dimensions_json: r.dimensions,
  }));
}

describe('Memtable capacity hint', () => {
  it('holds the same rows whatever room it was given, and grows past the hint', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer(),
        (n, hint, seed) => {
          const all = events(n, seed);
          const plain = new Memtable();
          const hinted = new Memtable(hint);
          for (const e of all) {
            plain.append(e, 7);
            hinted.append(e, 7);
          }
          expect(hinted.rowCount).toBe(n);
          expect(hinted.columns()).toEqual(plain.columns());
        },
      ),
      { numRuns: 30 },
    );
  });
});
