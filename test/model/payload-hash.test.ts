import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Memtable } from '../../src/ingest/memtable.ts';
import { KIND_NAMES } from '../../src/model/columns.ts';
import { canonicalDimensionsJson, canonicalPayload, type UsageEvent } from '../../src/model/event.ts';
import { hash128, hash128Into, hash128WordsInto } from '../../src/model/hash.ts';
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

type Wire = Record<string, unknown>;

function validated(w: Wire): UsageEvent | null {
  const { reason, ...rest } = w;
  const raw =
    rest.kind === 'Usage'
      ? rest
      : { ...rest, correction_ref: { original_event_id: 'orig', reason: (reason as string) || 'r' } };
  const v = validateEvent(raw, NOW, { futureSkewMs: 86_400_000 });
  return v.ok && v.event.quantity !== null ? (v.event as UsageEvent) : null;
}

/** Text that differs from `t` (ids stay valid: a suffix, never a control character). */
const other = (t: string): string => `${t}x`;
const otherQuantity = (q: UsageEvent['quantity']): UsageEvent['quantity'] =>
  typeof q === 'number' ? q + 1 : q + 1n;
function otherDimensions(json: string): string {
  const dims = JSON.parse(json) as Record<string, string>;
  const keys = Object.keys(dims);
  if (keys.length === 0) return canonicalDimensionsJson({ k: 'v' });
  return canonicalDimensionsJson({ ...dims, [keys[0]]: other(dims[keys[0]]) });
}

/**
 * `e` with one field of its canonical payload changed, for every field: event_id, kind,
 * correction_ref (original id, reason, presence), account_id, subscription_id (value and
 * null), product_id, meter_id, model_id (value and null), unit, source, timestamp_ms,
 * quantity, dimensions; plus two fields swapping their (different) values.
 */
function variants(e: UsageEvent): [string, UsageEvent][] {
  const ref = e.correction_ref;
  const out: [string, UsageEvent][] = [
    ['event_id', { ...e, event_id: other(e.event_id) }],
    ['kind', { ...e, kind: KIND_NAMES[(KIND_NAMES.indexOf(e.kind) + 1) % KIND_NAMES.length] }],
    ['account_id', { ...e, account_id: other(e.account_id) }],
    ['subscription_id null', { ...e, subscription_id: e.subscription_id === null ? 'a' : null }],
    ['product_id', { ...e, product_id: other(e.product_id) }],
    ['meter_id', { ...e, meter_id: other(e.meter_id) }],
    ['model_id null', { ...e, model_id: e.model_id === null ? 'a' : null }],
    ['unit', { ...e, unit: other(e.unit) }],
    ['source', { ...e, source: other(e.source) }],
    ['timestamp_ms', { ...e, timestamp_ms: e.timestamp_ms + 1 }],
    ['quantity', { ...e, quantity: otherQuantity(e.quantity) }],
    ['dimensions', { ...e, dimensions_json: otherDimensions(e.dimensions_json) }],
    [
      'correction_ref presence',
      { ...e, correction_ref: ref === null ? { original_event_id: 'o', reason: '' } : null },
    ],
  ];
  if (ref !== null) {
    out.push([
      'original_event_id',
      { ...e, correction_ref: { ...ref, original_event_id: other(ref.original_event_id) } },
    ]);
    out.push(['reason', { ...e, correction_ref: { ...ref, reason: other(ref.reason) } }]);
  }
  if (e.subscription_id !== null)
    out.push(['subscription_id', { ...e, subscription_id: other(e.subscription_id) }]);
  if (e.model_id !== null) out.push(['model_id', { ...e, model_id: other(e.model_id) }]);
  if (e.product_id !== e.meter_id)
    out.push(['product_id <-> meter_id', { ...e, product_id: e.meter_id, meter_id: e.product_id }]);
  return out;
}

const sameHash = (a: UsageEvent, b: UsageEvent): boolean => {
  const x = payloadHash(a);
  const y = payloadHash(b);
  return x.h1 === y.h1 && x.h2 === y.h2 && x.h3 === y.h3 && x.h4 === y.h4;
};

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
        // With the ids' hash words given (as the segment writer does), the same words.
        const h1 = new Uint32Array(unique.map((e) => hash128(e.event_id).h1));
        const h2 = new Uint32Array(unique.map((e) => hash128(e.event_id).h2));
        expect(payloadHashesOfColumns(m.columns(), { h1, h2 })).toEqual(stored);
        unique.forEach((e, row) => {
          const h = payloadHash(e);
          expect([h.h1, h.h2, h.h3, h.h4]).toEqual([...stored.subarray(row * 4, row * 4 + 4)]);
        });
        for (const e of unique) {
          for (const [field, changed] of variants(e)) {
            expect(canonicalPayload(changed), field).not.toBe(canonicalPayload(e));
            expect(sameHash(changed, e), `${field} changed, same hash: ${canonicalPayload(e)}`).toBe(false);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('changing any one field of a fully populated event changes the hash, also as a stored row', () => {
    const base = validated({
      event_id: 'evt_1',
      kind: 'Correction',
      account_id: 'acct_1',
      subscription_id: 'sub_1',
      product_id: 'llm-api',
      meter_id: 'tokens.output',
      model_id: 'gpt-x',
      unit: 'tokens',
      source: 'gateway',
      timestamp_ms: T0,
      quantity: 5,
      dimensions: { region: 'eu', tier: 'pro' },
      reason: 'recount',
    });
    if (base === null) throw new Error('the base event must be valid');
    const all = [base, ...variants(base).map(([, v]) => v)];
    expect(variants(base).map(([field]) => field)).toEqual([
      'event_id',
      'kind',
      'account_id',
      'subscription_id null',
      'product_id',
      'meter_id',
      'model_id null',
      'unit',
      'source',
      'timestamp_ms',
      'quantity',
      'dimensions',
      'correction_ref presence',
      'original_event_id',
      'reason',
      'subscription_id',
      'model_id',
      'product_id <-> meter_id',
    ]);
    const hashes = all.map((e) => {
      const h = payloadHash(e);
      return [h.h1, h.h2, h.h3, h.h4].join(',');
    });
    expect(new Set(hashes).size).toBe(all.length);
    // Each variant stored alone (one row, so ids may repeat across memtables) hashes the same.
    for (const e of all) {
      const m = new Memtable();
      m.append(e, NOW);
      const h = payloadHash(e);
      expect([...payloadHashesOfColumns(m.columns())]).toEqual([h.h1, h.h2, h.h3, h.h4]);
    }
  });

  it('is the same for wire forms that mean the same event', () => {
    const wire = {
      event_id: 'evt_1',
      account_id: 'acct_1',
      product_id: 'llm-api',
      meter_id: 'tokens.output',
      unit: 'tokens',
      source: 'gateway',
      timestamp_ms: T0,
      quantity: 5,
      dimensions: { region: 'eu', tier: 'pro' },
      reason: '',
      kind: 'Usage',
      subscription_id: null,
      model_id: null,
    };
    const base = validated(wire)!;
    const same: Wire[] = [
      { ...wire, quantity: '5' },
      { ...wire, dimensions: { tier: 'pro', region: 'eu' } },
      { ...wire, quantity: '5', dimensions: { tier: 'pro', region: 'eu' } },
    ];
    for (const w of same) {
      const e = validated(w)!;
      expect(canonicalPayload(e)).toBe(canonicalPayload(base));
      expect(payloadHash(e)).toEqual(payloadHash(base));
    }
    // Beyond 2^53 a quantity is only text, and one more unit is another hash.
    const big = validated({ ...wire, quantity: '9007199254740993' })!;
    expect(payloadHash(validated({ ...wire, quantity: '9007199254740993' })!)).toEqual(payloadHash(big));
    expect(payloadHash(validated({ ...wire, quantity: '9007199254740994' })!)).not.toEqual(payloadHash(big));
  });
});

describe('hash128WordsInto', () => {
  it("equals hash128Into of the string of the words' code units", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 2 ** 32 - 1 }), { maxLength: 40 }), (values) => {
        const words = Uint32Array.from(values);
        const units = new Uint16Array(words.buffer);
        const viaString = new Uint32Array(4);
        hash128Into(String.fromCharCode(...units), viaString);
        const direct = new Uint32Array(4);
        hash128WordsInto(words, words.length, direct);
        expect([...direct]).toEqual([...viaString]);
      }),
    );
  });
});
