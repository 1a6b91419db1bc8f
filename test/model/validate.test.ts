import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ECHO_BYTES_MAX, echoOf } from '../../src/model/echo.ts';
import { canonicalDimensionsJson, canonicalPayload } from '../../src/model/event.ts';
import { payloadHash } from '../../src/model/payload-hash.ts';
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

  it('a prefix or an extension of a known set is checked on its own', () => {
    expect(dimsOf({ pa: '1', pb: '2' })).toBe('{"pa":"1","pb":"2"}');
    expect(dimsOf({ pa: '1' })).toBe('{"pa":"1"}');
    expect(dimsOf({ pa: '1', pb: '2', pc: '' })).toBe('rejected: invalid_dimensions');
    expect(dimsOf({ pa: '1', pb: 2 })).toBe('rejected: invalid_dimensions');
    expect(dimsOf({ pa: '1', pb: '2' })).toBe('{"pa":"1","pb":"2"}');
  });

  it('never take a set from an object whose JSON describes another set', () => {
    expect(dimsOf({ region: 'us' })).toBe('{"region":"us"}');
    // An inherited toJSON would make JSON.stringify describe { region: 'us' }, a cached set:
    // such objects are not plain objects, so they are refused before any cache lookup.
    class Masked {
      region = 'eu';
      toJSON() {
        return { region: 'us' };
      }
    }
    expect(dimsOf(new Masked())).toBe('rejected: invalid_dimensions');
    const inherited = Object.create({ region: 'us' }) as Record<string, string>;
    inherited.tier = 'gold';
    expect(dimsOf(inherited)).toBe('rejected: invalid_dimensions');
    // An own toJSON is a non-string value: no cache key, and refused as a dimension.
    expect(dimsOf({ region: 'eu', toJSON: () => ({ region: 'us' }) })).toBe('rejected: invalid_dimensions');
  });
});

describe('control characters', () => {
  const c1 = ['\u0080', '\u0085', '\u009b', '\u009f'];

  it.each([
    'event_id',
    'account_id',
    'subscription_id',
    'product_id',
    'meter_id',
    'model_id',
    'unit',
    'source',
  ])('refuses C0, DEL and C1 controls in %s', (field) => {
    for (const control of ['\u0000', '\u001f', '\u007f', ...c1]) {
      const r = validateEvent(base({ [field]: `ab${control}cd` }), NOW, LIMITS);
      expect(reasonOf(r), JSON.stringify(control)).toBe('invalid_field');
      if (!r.ok) expect(r.message).toContain('control character');
    }
  });

  it('refuses C1 controls in dimension keys and correction_ref.original_event_id', () => {
    for (const control of c1) {
      expect(reasonOf(validateEvent(base({ dimensions: { [`k${control}`]: 'v' } }), NOW, LIMITS))).toBe(
        'invalid_dimensions',
      );
      const ref = { original_event_id: `o${control}`, reason: 'r' };
      expect(reasonOf(validateEvent(base({ kind: 'Correction', correction_ref: ref }), NOW, LIMITS))).toBe(
        'invalid_field',
      );
    }
  });

  it('accepts the characters around the C1 range, and controls in dimension values and reasons', () => {
    for (const ok of ['\u007e', '\u00a0', 'é', '\u2028'])
      expect(reasonOf(validateEvent(base({ source: `s${ok}` }), NOW, LIMITS))).toBe('ok');
    expect(reasonOf(validateEvent(base({ dimensions: { k: 'v\u0085\u0001' } }), NOW, LIMITS))).toBe('ok');
    const ref = { original_event_id: 'o', reason: 'why\u0085' };
    expect(reasonOf(validateEvent(base({ kind: 'Correction', correction_ref: ref }), NOW, LIMITS))).toBe(
      'ok',
    );
  });
});

describe('plain objects only, own properties only', () => {
  it('refuses a Map, a class instance or an object with another prototype as dimensions', () => {
    const map = validateEvent(base({ dimensions: new Map([['region', 'eu']]) }), NOW, LIMITS);
    expect(reasonOf(map)).toBe('invalid_dimensions');
    class Dims {
      region = 'eu';
    }
    expect(reasonOf(validateEvent(base({ dimensions: new Dims() }), NOW, LIMITS))).toBe('invalid_dimensions');
    expect(reasonOf(validateEvent(base({ dimensions: new Date(0) }), NOW, LIMITS))).toBe(
      'invalid_dimensions',
    );
  });

  it('refuses an event that is not a plain object, or whose fields are inherited', () => {
    const fields = base();
    expect(reasonOf(validateEvent(new Map(Object.entries(fields)), NOW, LIMITS))).toBe('invalid_event');
    class Event {
      constructor() {
        Object.assign(this, fields);
      }
    }
    expect(reasonOf(validateEvent(new Event(), NOW, LIMITS))).toBe('invalid_event');
    // quantity inherited from a prototype used to be read, while inherited dimensions were not.
    const { quantity, ...rest } = fields;
    const child = Object.assign(Object.create({ quantity }) as object, rest);
    expect(reasonOf(validateEvent(child, NOW, LIMITS))).toBe('invalid_event');
  });

  it('refuses a field that is not an own enumerable property, even inherited from Object.prototype', () => {
    const { quantity, ...rest } = base();
    const hidden = { ...rest };
    Object.defineProperty(hidden, 'quantity', { value: quantity, enumerable: false });
    expect(reasonOf(validateEvent(hidden, NOW, LIMITS))).toBe('invalid_event');
    const proto = Object.prototype as Record<string, unknown>;
    for (const enumerable of [true, false]) {
      Object.defineProperty(proto, 'quantity', { value: 7, enumerable, configurable: true, writable: true });
      try {
        expect(reasonOf(validateEvent({ ...rest }, NOW, LIMITS))).not.toBe('ok');
      } finally {
        delete proto.quantity;
      }
    }
    expect(reasonOf(validateEvent({ ...rest }, NOW, LIMITS))).toBe('missing_field');
  });

  it('accepts null-prototype objects and own fields set to undefined', () => {
    const event = Object.assign(Object.create(null) as object, base({ model_id: undefined }), {
      dimensions: Object.assign(Object.create(null) as object, { region: 'eu' }),
    });
    const r = validateEvent(event, NOW, LIMITS);
    expect(r.ok && r.event.dimensions_json).toBe('{"region":"eu"}');
  });

  it('refuses a correction_ref that is not a plain object, and reads only its own fields', () => {
    const correction = (ref: unknown) =>
      reasonOf(validateEvent(base({ kind: 'Correction', correction_ref: ref }), NOW, LIMITS));
    expect(
      correction(
        new Map([
          ['original_event_id', 'o'],
          ['reason', 'r'],
        ]),
      ),
    ).toBe('invalid_field');
    expect(correction(Object.create({ original_event_id: 'o', reason: 'r' }))).toBe('invalid_field');
    expect(correction(['o', 'r'])).toBe('invalid_field');
    expect(correction({ original_event_id: 'o', reason: 'r' })).toBe('ok');
  });

  it('treats "__proto__" from JSON.parse as a key: unknown event field, refused dimension key, no pollution', () => {
    const wire = JSON.stringify(base());
    const event = JSON.parse(`${wire.slice(0, -1)},"__proto__":{"quantity":5}}`) as unknown;
    expect(reasonOf(validateEvent(event, NOW, LIMITS))).toBe('unknown_field');
    for (const dims of [
      '{"__proto__":"x"}',
      '{"a":"b","__proto__":"x"}',
      '{"__proto__":{"polluted":"yes"}}',
    ]) {
      const r = validateEvent({ ...base(), dimensions: JSON.parse(dims) as unknown }, NOW, LIMITS);
      expect(reasonOf(r), dims).toBe('invalid_dimensions');
      if (!r.ok && dims.startsWith('{"__proto__":"')) expect(r.message).toContain('__proto__');
    }
    const ref = JSON.parse('{"original_event_id":"o","reason":"r","__proto__":{"x":1}}') as unknown;
    expect(reasonOf(validateEvent(base({ kind: 'Correction', correction_ref: ref }), NOW, LIMITS))).toBe(
      'unknown_field',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).quantity).toBeUndefined();
  });
});

describe('echoed input is cut', () => {
  it('echoes at most 256 bytes of a rejected event_id, and says so', () => {
    const r = validateEvent(base({ event_id: 'x'.repeat(10_000_000) }), NOW, LIMITS);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toBe('invalid_field');
    expect(r.event_id).toBe('x'.repeat(ECHO_BYTES_MAX));
    expect(r.message).toMatch(/event_id cut to its first 256 characters/);
    expect(r.message.length).toBeLessThan(200);
  });

  it('cuts at a code-point boundary and counts bytes of UTF-8', () => {
    const id = `${'a'.repeat(254)}😀${'b'.repeat(300)}`;
    const r = validateEvent(base({ event_id: id }), NOW, LIMITS);
    expect(!r.ok && r.event_id).toBe('a'.repeat(254));
    expect(!r.ok && r.message).toMatch(/first 254 characters/);
    const accents = validateEvent(base({ event_id: 'é'.repeat(200) }), NOW, LIMITS);
    expect(!accents.ok && accents.event_id).toBe('é'.repeat(128));
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
        const echo = echoOf(s);
        expect(s.startsWith(echo.text)).toBe(true);
        expect(Buffer.byteLength(echo.text.replace(/[\ud800-\udfff]/g, '\ufffd'))).toBeLessThanOrEqual(
          ECHO_BYTES_MAX,
        );
        expect(echo.cut).toBe(echo.text !== s);
        // Never ends between the halves of a pair.
        const last = echo.text.charCodeAt(echo.text.length - 1);
        const next = s.charCodeAt(echo.text.length);
        expect(echo.cut && last >= 0xd800 && last <= 0xdbff && next >= 0xdc00 && next <= 0xdfff).toBe(false);
      }),
    );
  });

  it('keeps a short rejected event_id whole, without a note', () => {
    const r = validateEvent(base({ event_id: 'e\u0085' }), NOW, LIMITS);
    expect(!r.ok && r.event_id).toBe('e\u0085');
    expect(!r.ok && r.message).not.toMatch(/cut/);
  });

  it('cuts an unknown field name in the message', () => {
    const name = 'f'.repeat(1_000_000);
    const r = validateEvent({ ...base(), [name]: 1 }, NOW, LIMITS);
    expect(reasonOf(r)).toBe('unknown_field');
    expect(!r.ok && r.message.length).toBeLessThan(400);
    const ref = { original_event_id: 'o', reason: 'r', [name]: 1 };
    const c = validateEvent(base({ kind: 'Correction', correction_ref: ref }), NOW, LIMITS);
    expect(!c.ok && c.message.length).toBeLessThan(400);
  });
});

describe('decimal-string quantities: leading zeros at any length', () => {
  const quantityOf = (q: unknown) => {
    const r = validateEvent(base({ quantity: q }), NOW, LIMITS);
    return r.ok ? r.event.quantity : `rejected: ${r.reason}`;
  };

  it('accepts leading zeros whatever the length, up to 256 characters', () => {
    expect(quantityOf('00012')).toBe(12);
    expect(quantityOf(`${'0'.repeat(60)}5`)).toBe(5);
    expect(quantityOf(`${'0'.repeat(255)}5`)).toBe(5);
    expect(quantityOf(`${'0'.repeat(200)}${QUANTITY_ABS_MAX}`)).toBe(QUANTITY_ABS_MAX);
    expect(quantityOf('-000')).toBe(0);
    expect(quantityOf('0'.repeat(256))).toBe(0);
  });

  it('refuses a string longer than 256 characters, and a value beyond 10^38 − 1 however written', () => {
    expect(quantityOf(`${'0'.repeat(256)}5`)).toBe('rejected: invalid_quantity');
    expect(quantityOf(`${'0'.repeat(100)}${QUANTITY_ABS_MAX + 1n}`)).toBe('rejected: invalid_quantity');
    expect(quantityOf('+5')).toBe('rejected: invalid_quantity');
    expect(quantityOf('')).toBe('rejected: invalid_quantity');
  });

  it('gives "000…q" and q the same canonical payload and payload hash', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -QUANTITY_ABS_MAX, max: QUANTITY_ABS_MAX }),
        fc.integer({ min: 0, max: 200 }),
        (q, zeros) => {
          const padded = `${q < 0n ? '-' : ''}${'0'.repeat(zeros)}${(q < 0n ? -q : q).toString()}`;
          const kind = { kind: 'Correction', correction_ref: { original_event_id: 'o', reason: 'r' } };
          const a = validateEvent(base({ ...kind, quantity: padded }), NOW, LIMITS);
          const plain =
            q >= BigInt(Number.MIN_SAFE_INTEGER) && q <= BigInt(Number.MAX_SAFE_INTEGER)
              ? Number(q)
              : q.toString();
          const b = validateEvent(base({ ...kind, quantity: plain }), NOW, LIMITS);
          if (!a.ok || !b.ok || a.event.quantity === null || b.event.quantity === null)
            throw new Error('expected valid');
          const ea = { ...a.event, quantity: a.event.quantity };
          const eb = { ...b.event, quantity: b.event.quantity };
          expect(ea.quantity).toBe(eb.quantity);
          expect(canonicalPayload(ea)).toBe(canonicalPayload(eb));
          expect(payloadHash(ea)).toEqual(payloadHash(eb));
        },
      ),
    );
  });
});
