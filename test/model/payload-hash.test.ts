import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Memtable } from '../../src/ingest/memtable.ts';
import type { UsageEvent } from '../../src/model/event.ts';
import { payloadHash, payloadHashesOfColumns } from '../../src/model/payload-hash.ts';
import { validateEvent } from '../../src/model/validate.ts';
import { NOW, T0 } from '../support/events.ts';

const text = fc.constantFrom('a', 'b', 'acct_1', 'é', '0');
const wireArb = fc.record({
  event_id: fc
    .string({ minLength: 1, maxLength: 8 })
    .filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && s.isWellFormed()),
  kind: fc.constantFrom('Usage', 'Correction'),
  account_id: text,
  subscription_id: fc.option(text),
  product_id: text,
  meter_id: text,
  model_id: fc.option(text),
  unit: text,
  source: text,
  timestamp_ms: fc.integer({ min: T0, max: NOW }),
  quantity: fc.oneof(
    fc.integer({ min: 0, max: 2 ** 40 }),
    fc.bigInt({ min: -(10n ** 38n) + 1n, max: 10n ** 38n - 1n }).map(String),
    fc.constantFrom(Number.MAX_SAFE_INTEGER, '9007199254740993', '-9007199254740993'),
  ),
  dimensions: fc.option(fc.dictionary(text, text, { maxKeys: 3 }), { nil: undefined }),
  reason: fc.constantFrom('fix', ''),
});

type Wire = typeof wireArb extends fc.Arbitrary<infer T> ? T : never;

function validated(w: Wire): UsageEvent | null {
  const { reason, ...rest } = w;
  const raw =
    rest.kind === 'Usage'
      ? rest
      : { ...rest, correction_ref: { original_event_id: 'orig', reason: reason || 'r' } };
  const v = validateEvent(raw, NOW, { futureSkewMs: 86_400_000 });
  return v.ok && v.event.quantity !== null ? (v.event as UsageEvent) : null;
}

describe('payload hash', () => {
  it('is the same for an event and for its stored row, and differs when any field differs', () => {
    fc.assert(
      fc.property(fc.array(wireArb, { minLength: 1, maxLength: 30 }), (wires) => {
        const events = wires.map(validated).filter((e): e is UsageEvent => e !== null);
        const ids = new Set<string>();
        const unique = events.filter((e) => !ids.has(e.event_id) && ids.add(e.event_id));
        const m = new Memtable();
        for (const e of unique) m.append(e, NOW);
        const stored = payloadHashesOfColumns(m.columns());
        unique.forEach((e, row) => {
          const h = payloadHash(e);
          expect([h.h1, h.h2, h.h3, h.h4]).toEqual([...stored.subarray(row * 4, row * 4 + 4)]);
        });
        for (const e of unique) {
          const base = payloadHash(e);
          const changed = [
            { ...e, quantity: typeof e.quantity === 'number' ? e.quantity + 1 : e.quantity + 1n },
            { ...e, timestamp_ms: e.timestamp_ms + 1 },
            { ...e, model_id: e.model_id === null ? 'a' : null },
            { ...e, subscription_id: e.subscription_id === null ? 'a' : null },
            { ...e, dimensions_json: `${e.dimensions_json} ` },
          ];
          for (const c of changed) expect(payloadHash(c)).not.toEqual(base);
        }
      }),
      { numRuns: 200 },
    );
  });
});
