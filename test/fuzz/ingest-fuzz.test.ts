/**
 * Hostile input against the library: arbitrary values, near-valid events with one field made
 * wrong, nasty keys, huge and odd strings, absurd numbers. Every call answers (a per-event
 * reason, never a crash), the counts add up, nothing pollutes a prototype, and what was
 * accepted is exactly what the query engine counts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
import { EVENT_FIELDS } from '../../src/model/validate.ts';
import { NOW, simDb, T0 } from '../support/events.ts';

const SNAKE = /^[a-z][a-z0-9_]*$/;

const nastyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\u0085',
    '\ud800',
    'a\u0007b',
    '__proto__',
    'constructor',
    '💸',
    'x'.repeat(300),
  ),
);

const nastyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 2 ** 53, -(2 ** 53), 1e38, 0.5),
);

const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  nastyString,
  nastyNumber,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(nastyString, nastyString, { maxKeys: 20 }),
  fc.bigInt().map((b) => b),
  fc.constantFrom('5', '-5', '0005', '1'.repeat(39), '1e3', ' 5', '5.0'),
);

function validEvent(i: number): Record<string, unknown> {
  return {
    event_id: `fz-${i}`,
    account_id: `acct_${i % 5}`,
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'gateway',
    model_id: 'm',
    timestamp_ms: T0 + i * 1000,
    quantity: i % 100,
    dimensions: { region: 'eu' },
  };
}

const FIELDS = [...EVENT_FIELDS, '__proto__', 'extra_field'];

/** A valid event with one field replaced by a hostile value (or removed). */
const mutatedEvent = fc
  .tuple(fc.nat(1_000_000), fc.constantFrom(...FIELDS), nastyValue, fc.boolean())
  .map(([i, field, value, remove]) => {
    const e = validEvent(i);
    if (remove) delete e[field];
    else if (field === '__proto__') Object.defineProperty(e, '__proto__', { value, enumerable: true });
    else e[field] = value;
    return e as unknown;
  });

const deepNesting = fc.nat(200).map((depth) => {
  let v: unknown = 'leaf';
  for (let k = 0; k < depth; k++) v = { dimensions: v };
  return v;
});

const hostileEvent = fc.oneof(
  { weight: 5, arbitrary: mutatedEvent },
  { weight: 2, arbitrary: fc.anything() },
  { weight: 1, arbitrary: deepNesting },
  { weight: 2, arbitrary: fc.nat(1_000_000).map(validEvent) },
);

describe('hostile input to the library', () => {
  it('every event gets an answer, counts add up, nothing is polluted, accepted = counted (>= 10,000 inputs)', async () => {
    const sim = simDb(11);
    const db = await sim.open();
    const acceptedIds = new Set<string>();
    let inputs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(hostileEvent, { minLength: 60, maxLength: 120 }), async (batch) => {
        inputs += batch.length;
        const r = await db.ingest(batch);
        expect(r.accepted + r.duplicates + r.conflicts + r.rejected).toBe(batch.length);
        for (const err of r.errors) {
          expect(err.index).toBeGreaterThanOrEqual(0);
          expect(err.index).toBeLessThan(batch.length);
          expect(['rejected', 'conflict']).toContain(err.status);
          expect(err.reason).toMatch(SNAKE);
          if (typeof err.event_id === 'string')
            expect(Buffer.byteLength(err.event_id)).toBeLessThanOrEqual(256);
        }
        const failed = new Set(r.errors.map((e) => e.index));
        // Accepted events are the ones neither rejected, conflicting nor duplicates of earlier ones.
        batch.forEach((e, i) => {
          if (failed.has(i)) return;
          const id = (e as { event_id: string }).event_id;
          acceptedIds.add(id);
        });
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('polluted');
      }),
      { numRuns: 170, seed: 4242 },
    );
    expect(inputs).toBeGreaterThanOrEqual(10_000);
    await db.flush();
    const total = await db.query({ from: 1, to: NOW + 2 * 86_400_000, metrics: ['count'] });
    expect(total.rows[0].count).toBe(acceptedIds.size);
    await db.close();
  });

  it('a batch that is not an array, or too large, is refused whole with a catalogue error', async () => {
    const sim = simDb(12);
    const db = await sim.open();
    for (const bad of [null, 'x', 5, { events: [] }]) {
      const err = await db.ingest(bad as unknown as unknown[]).catch((x: unknown) => x);
      expect(err).toBeInstanceOf(UsageDbError);
    }
    const err = await db
      .ingest(Array.from({ length: 10_001 }, (_, i) => validEvent(i)))
      .catch((x: unknown) => x);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_BATCH_TOO_LARGE');
    expect((await db.query({ from: 1, to: NOW, metrics: ['count'] })).rows[0].count).toBe(0);
    await db.close();
  });
});
