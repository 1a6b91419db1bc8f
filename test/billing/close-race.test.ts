/**
 * close races ingest: whatever the interleaving, every acknowledged Usage event of the month
 * is in the snapshot, and every other one was refused `period_closed` — none acknowledged
 * and unaccounted for.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evidenceDigest } from '../../src/billing/digest.ts';
import type { ClosedPeriodView, IngestResult } from '../../src/db.ts';
import { simDb, type WireInput } from '../support/events.ts';
import { ev, HOUR, MAY } from './helpers.ts';

type Op = { kind: 'ingest'; size: number; yields: number } | { kind: 'flush'; yields: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('ingest' as const),
      size: fc.integer({ min: 1, max: 20 }),
      yields: fc.integer({ min: 0, max: 6 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('flush' as const), yields: fc.integer({ min: 0, max: 6 }) }),
  },
);

async function spin(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe('close racing concurrent ingest', () => {
  it('no event is acknowledged and left out of the snapshot', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 0, max: 6 }),
        fc.constantFrom('strict' as const, 'balanced' as const, 'fast' as const),
        fc.integer({ min: 1, max: 1000 }),
        async (ops, closeAt, closeYields, durability, seed) => {
          const sim = simDb(seed);
          const db = await sim.open({ durability, limits: { memtableBytesMax: 4096 } });
          let next = 0;
          const sent = new Map<string, WireInput>();
          const calls: Promise<unknown>[] = [];
          const results: { batch: WireInput[]; result: Promise<IngestResult> }[] = [];
          let close: Promise<ClosedPeriodView> | null = null;
          const startClose = () => {
            close = spin(closeYields).then(() => db.periods.close('acme', '2026-05'));
            calls.push(close);
          };
          ops.forEach((op, i) => {
            if (i === closeAt) startClose();
            if (op.kind === 'flush') {
              calls.push(spin(op.yields).then(() => db.flush()));
              return;
            }
            const batch = Array.from({ length: op.size }, () => {
              const n = next++;
              const e = ev(`e${n}`, {
                quantity: n,
                timestamp_ms: MAY + (n % 500) * HOUR,
                model_id: n % 2 ? 'a' : null,
              });
              sent.set(`e${n}`, e);
              return e;
            });
            const result = spin(op.yields).then(() => db.ingest(batch));
            results.push({ batch, result });
            calls.push(result);
          });
          if (close === null) startClose();
          await Promise.all(calls);
          const closed = await (close as unknown as Promise<ClosedPeriodView>);
          const acknowledged: WireInput[] = [];
          for (const { batch, result } of results) {
            const r = await result;
            const refused = new Map(r.errors.map((e) => [e.index, e]));
            batch.forEach((e, i) => {
              const err = refused.get(i);
              if (err === undefined) acknowledged.push(e);
              else expect(err.reason).toBe('period_closed');
            });
            expect(r.accepted + r.rejected).toBe(batch.length);
          }
          const count = closed.snapshot.lines.reduce((n, l) => n + l.event_count, 0);
          const sum = closed.snapshot.lines.reduce((n, l) => n + BigInt(l.quantity), 0n);
          expect(count).toBe(acknowledged.length);
          expect(sum).toBe(acknowledged.reduce((n, e) => n + BigInt(e.quantity as number), 0n));
          expect(closed.snapshot.evidence_digest).toBe(
            evidenceDigest(
              acknowledged.map((e) => ({
                event_id: e.event_id as string,
                kind: 'Usage',
                product_id: e.product_id as string,
                meter_id: e.meter_id as string,
                model_id: e.model_id as string | null,
                unit: e.unit as string,
                timestamp_ms: e.timestamp_ms as number,
                quantity: String(e.quantity),
              })),
            ),
          );
          // After the race, nothing more gets in.
          expect((await db.ingest([ev('after')])).errors[0]?.reason).toBe('period_closed');
          await db.close();
        },
      ),
      { numRuns: 40 },
    );
  }, 60_000);
});
