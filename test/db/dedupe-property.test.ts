/**
 * Property: whatever the interleaving of batches, flushes and restarts, each ingest call's
 * accepted/duplicate/conflict counts equal a reference model's, and the stored set equals the
 * first payload accepted for each id.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAY_MS, T0, simDb } from '../support/events.ts';
import { scanAccount } from '../support/scan.ts';

type Op =
  | { kind: 'ingest'; events: { id: number; variant: number; day: number; account: number }[] }
  | { kind: 'flush' }
  | { kind: 'restart' };

const eventArb = fc.record({
  id: fc.integer({ min: 0, max: 40 }),
  variant: fc.integer({ min: 0, max: 2 }),
  day: fc.integer({ min: 0, max: 2 }),
  account: fc.integer({ min: 0, max: 3 }),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('ingest' as const),
      events: fc.array(eventArb, { minLength: 1, maxLength: 10 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

function wire(e: { id: number; variant: number; day: number; account: number }) {
  return {
    event_id: `id-${e.id}`,
    account_id: `a${e.account}`,
    product_id: 'p',
    meter_id: 'm',
    unit: 'u',
    source: 's',
    timestamp_ms: T0 + e.day * DAY_MS + e.id,
    quantity: 10 + e.variant,
  };
}

describe('dedupe property', () => {
  it('counts match a reference model across flushes and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const sim = simDb(5);
        let db = await sim.open();
        const stored = new Map<string, string>();
        try {
          for (const op of ops) {
            if (op.kind === 'flush') await db.flush();
            else if (op.kind === 'restart') {
              await db.close();
              db = await sim.open();
            } else {
              const expected = { accepted: 0, duplicates: 0, conflicts: 0 };
              for (const e of op.events) {
                const w = wire(e);
                const key = JSON.stringify(w);
                const prior = stored.get(w.event_id);
                if (prior === undefined) {
                  stored.set(w.event_id, key);
                  expected.accepted++;
                } else if (prior === key) expected.duplicates++;
                else expected.conflicts++;
              }
              const r = await db.ingest(op.events.map(wire));
              expect({ accepted: r.accepted, duplicates: r.duplicates, conflicts: r.conflicts }).toEqual(
                expected,
              );
            }
          }
          const seen = new Map<string, string>();
          for (let a = 0; a < 4; a++) {
            for (const e of await scanAccount(db, `a${a}`, 0, Number.MAX_SAFE_INTEGER)) {
              seen.set(
                e.event_id,
                JSON.stringify({
                  ...wire({ id: 0, variant: 0, day: 0, account: 0 }),
                  event_id: e.event_id,
                  account_id: e.account_id,
                  timestamp_ms: e.timestamp_ms,
                  quantity: Number(e.quantity),
                }),
              );
            }
          }
          expect([...seen.keys()].sort()).toEqual([...stored.keys()].sort());
          for (const [id, key] of stored) expect(seen.get(id)).toBe(key);
        } finally {
          await db.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
