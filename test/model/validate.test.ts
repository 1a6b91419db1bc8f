import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalDimensionsJson, canonicalPayload } from '../../src/model/event.ts';
import { QUANTITY_ABS_MAX } from '../../src/model/quantity.ts';
import { type ValidationResult, validateEvent } from '../../src/model/validate.ts';

const NOW = Date.UTC(2026, 5, 1);
const LIMITS = { futureSkewMs: 24 * 3600 * 1000 };

function base(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: 'evt_1',
    account_id: 'acct_1',
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'gateway',
    timestamp_ms: Date.UTC(2026, 4, 10),
    quantity: 42,
    ...overrides,
  };
}

function reasonOf(r: ValidationResult): string {
  return r.ok ? 'ok' : r.reason;
}

describe('validateEvent', () => {
  it('accepts a minimal Usage event and normalises it', () => {
    const r = validateEvent(base(), NOW, LIMITS);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.event.kind).toBe('Usage');
    expect(r.event.model_id).toBeNull();
    expect(r.event.subscription_id).toBeNull();
    expect(r.event.dimensions_json).toBe('{}');
    expect(r.event.correction_ref).toBeNull();
  });

  it.each([
    ['not an object', 'x', 'invalid_event'],
    ['array', [], 'invalid_event'],
    ['missing event_id', base({ event_id: undefined }), 'missing_field'],
    ['empty account', base({ account_id: '' }), 'invalid_field'],
    ['id too long', base({ event_id: 'x'.repeat(257) }), 'invalid_field'],
    ['id 256 multibyte bytes ok?', base({ event_id: 'é'.repeat(129) }), 'invalid_field'],
    ['control char in id', base({ event_id: 'a\nb' }), 'invalid_field'],
    ['lone surrogate', base({ product_id: 'a\ud800' }), 'invalid_field'],
    ['number as id', base({ meter_id: 5 }), 'invalid_field'],
    ['unknown field', base({ quantitiy: 5 }), 'unknown_field'],
    ['bad kind', base({ kind: 'Refund' }), 'invalid_kind'],
    ['float quantity', base({ quantity: 1.5 }), 'invalid_quantity'],
    ['unsafe number quantity', base({ quantity: 2 ** 60 }), 'invalid_quantity'],
    ['decimal string with dot', base({ quantity: '1.0' }), 'invalid_quantity'],
    ['too large quantity', base({ quantity: (QUANTITY_ABS_MAX + 1n).toString() }), 'invalid_quantity'],
    ['negative usage', base({ quantity: -1 }), 'negative_quantity'],
    ['missing quantity', base({ quantity: undefined }), 'missing_field'],
    ['zero timestamp', base({ timestamp_ms: 0 }), 'invalid_timestamp'],
    ['float timestamp', base({ timestamp_ms: 1.5 }), 'invalid_timestamp'],
    ['future timestamp', base({ timestamp_ms: NOW + 25 * 3600 * 1000 }), 'timestamp_in_future'],
    [
      '17 dimensions',
      base({ dimensions: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }),
      'too_many_dimensions',
    ],
    ['non-string dimension', base({ dimensions: { a: 1 } }), 'invalid_dimensions'],
    ['empty dimension value', base({ dimensions: { a: '' } }), 'invalid_dimensions'],
    ['dimension array', base({ dimensions: ['a'] }), 'invalid_dimensions'],
    [
      'usage with ref',
      base({ correction_ref: { original_event_id: 'e', reason: 'r' } }),
      'unexpected_correction_ref',
    ],
    ['correction without ref', base({ kind: 'Correction' }), 'missing_correction_ref'],
    [
      'correction empty reason',
      base({ kind: 'Correction', correction_ref: { original_event_id: 'e', reason: '' } }),
      'invalid_field',
    ],
  ])('rejects %s', (_name, input, reason) => {
    expect(reasonOf(validateEvent(input, NOW, LIMITS))).toBe(reason);
  });

  it('accepts the quantity extremes and a Retraction without quantity', () => {
    const max = QUANTITY_ABS_MAX.toString();
    const r1 = validateEvent(
      base({
        kind: 'Correction',
        quantity: `-${max}`,
        correction_ref: { original_event_id: 'o', reason: 'r' },
      }),
      NOW,
      LIMITS,
    );
    expect(r1.ok && r1.event.quantity === -QUANTITY_ABS_MAX).toBe(true);
    const r2 = validateEvent(base({ quantity: max }), NOW, LIMITS);
    expect(r2.ok && r2.event.quantity === QUANTITY_ABS_MAX).toBe(true);
    const r3 = validateEvent(
      base({
        kind: 'Retraction',
        quantity: undefined,
        correction_ref: { original_event_id: 'o', reason: 'r' },
      }),
      NOW,
      LIMITS,
    );
    expect(r3.ok && r3.event.quantity === null).toBe(true);
  });

  it('canonical payload: 5 and "5" are the same, dimension order does not matter, ingested_at_ms is ignored', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: QUANTITY_ABS_MAX }),
        fc.dictionary(
          fc
            .string({ minLength: 1, maxLength: 8 })
            .filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && s.isWellFormed()),
          fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.isWellFormed()),
          { maxKeys: 16 },
        ),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (q, dims, ingested) => {
          const asString = validateEvent(base({ quantity: q.toString(), dimensions: dims }), NOW, LIMITS);
          const reversed = Object.fromEntries(Object.entries(dims).reverse());
          const other = validateEvent(
            base({
              quantity: q <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(q) : q.toString(),
              dimensions: reversed,
              ingested_at_ms: ingested,
            }),
            NOW,
            LIMITS,
          );
          expect(asString.ok && other.ok).toBe(true);
          if (!asString.ok || !other.ok) return;
          const a = { ...asString.event, quantity: asString.event.quantity ?? 0 };
          const b = { ...other.event, quantity: other.event.quantity ?? 0 };
          expect(canonicalPayload(a)).toBe(canonicalPayload(b));
        },
      ),
    );
  });

  it('canonical payload differs when any field differs', () => {
    const a = validateEvent(base(), NOW, LIMITS);
    const b = validateEvent(base({ quantity: 43 }), NOW, LIMITS);
    const c = validateEvent(base({ dimensions: { region: 'eu' } }), NOW, LIMITS);
    if (!a.ok || !b.ok || !c.ok) throw new Error('expected valid');
    const pa = canonicalPayload({ ...a.event, quantity: 42 });
    expect(pa).not.toBe(canonicalPayload({ ...b.event, quantity: 43 }));
    expect(pa).not.toBe(canonicalPayload({ ...c.event, quantity: 42 }));
  });

  it('sorts integer-like dimension keys as strings', () => {
    const r = validateEvent(base({ dimensions: { b: '1', '10': '2', '9': '3' } }), NOW, LIMITS);
    expect(r.ok && r.event.dimensions_json).toBe('{"10":"2","9":"3","b":"1"}');
  });
});

describe('dimension sets seen before (validation cache)', () => {
  const event = {
    event_id: 'e1',
    account_id: 'a',
    product_id: 'p',
    meter_id: 'm',
    unit: 'u',
    source: 's',
    timestamp_ms: NOW - 1,
    quantity: 1,
  };
  const dimsOf = (dimensions: unknown): string => {
    const v = validateEvent({ ...event, dimensions }, NOW, LIMITS);
    return v.ok ? v.event.dimensions_json : `rejected: ${v.reason}`;
  };

  it('canonicalise exactly as the first time, for any map, in any key order', () => {
    const text = fc.string({
      unit: fc.constantFrom('a', 'b', '1', ':', '\u0000', 'é', '\ud83d\ude00'),
      maxLength: 4,
    });
    fc.assert(
      fc.property(fc.dictionary(text, text, { maxKeys: 5 }), (dims) => {
        const first = dimsOf(dims);
        const reversed = Object.fromEntries(Object.entries(dims).reverse());
        expect(dimsOf(dims)).toBe(first);
        expect(dimsOf(reversed)).toBe(first);
        const valid = Object.keys(dims).every((k) => k.length > 0 && !k.includes('\u0000'));
        const values = Object.values(dims).every((v) => v.length > 0);
        expect(first).toBe(valid && values ? canonicalDimensionsJson(dims) : 'rejected: invalid_dimensions');
      }),
      { numRuns: 300 },
    );
  });

  it('never mistake one set for another whose keys and values concatenate alike', () => {
    expect(dimsOf({ a: 'b\u0000c', d: 'e' })).toBe('{"a":"b\\u0000c","d":"e"}');
    expect(dimsOf({ a: 'b', c: 'd\u0000e' })).toBe('{"a":"b","c":"d\\u0000e"}');
    expect(dimsOf({ a1: '2', b: 'x' })).toBe('{"a1":"2","b":"x"}');
    expect(dimsOf({ a: '12', b: 'x' })).toBe('{"a":"12","b":"x"}');
  });

  it('never take a set from an object whose JSON describes another set', () => {
    expect(dimsOf({ region: 'us' })).toBe('{"region":"us"}');
    // An inherited toJSON makes JSON.stringify describe { region: 'us' }, a cached set.
    class Masked {
      region = 'eu';
      toJSON() {
        return { region: 'us' };
      }
    }
    expect(dimsOf(new Masked())).toBe('{"region":"eu"}');
    const inherited = Object.create({ region: 'us' }) as Record<string, string>;
    inherited.tier = 'gold';
    expect(dimsOf(inherited)).toBe('{"tier":"gold"}');
  });
});
