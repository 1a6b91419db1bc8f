import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBatchBody } from '../../src/api/batch-body.ts';

/** Small sizes, so that small bodies are cut many times. */
const SMALL = { pieceBytes: 64, smallBodyBytes: 0 };

/** Strings that stress the cuts: braces, commas, quotes, escapes, non-ASCII. */
const trickyText = fc.oneof(
  fc.string(),
  fc.constantFrom('},{', '"},{"', '\\', '\\"},{', 'é', '日本', '😀', '\u2028', '{', ']', ','),
  fc
    .array(fc.constantFrom('}', ',', '{', '"', '\\', 'a', 'é', ' '), { maxLength: 12 })
    .map((a) => a.join('')),
);

const event = fc.record(
  {
    event_id: trickyText,
    account_id: fc.string(),
    quantity: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string()),
    dimensions: fc.oneof(fc.constant(null), fc.dictionary(trickyText, trickyText, { maxKeys: 3 })),
    nested: fc.jsonValue({ maxDepth: 3 }),
  },
  { requiredKeys: ['event_id'] },
);

describe('batch bodies parsed in pieces', () => {
  it('give exactly what JSON.parse of the whole body gives', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), fc.constantFrom('', ' ', '\n  '), (events, space) => {
        const body = Buffer.from(
          `${space}{${space}"events"${space}:${space}${JSON.stringify(events)}${space}}${space}`,
        );
        const parsed = parseBatchBody(body, SMALL);
        // Undefined only when a cut fell inside a string holding "},{" (the body is then parsed whole).
        if (parsed === undefined) expect(body.toString()).toContain('},{');
        else expect(parsed).toEqual(JSON.parse(body.toString('utf8')));
      }),
      { numRuns: 300 },
    );
  });

  it('never accept a damaged body that JSON.parse refuses, nor answer it differently', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 20 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        (events, edits, cut) => {
          const bytes = Buffer.from(JSON.stringify({ events }));
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          const body = cut % 3 === 0 ? bytes.subarray(0, cut % bytes.length) : bytes;
          const parsed = parseBatchBody(body, SMALL);
          if (parsed === undefined) return;
          accepted++;
          expect(parsed).toEqual(JSON.parse(body.toString('utf8')));
        },
      ),
      { numRuns: 1000 },
    );
    // Edits inside strings leave valid bodies: the accepting path was exercised too.
    expect(accepted).toBeGreaterThan(50);
  });

  it('leave other shapes, small bodies and trailing commas to the whole parse', () => {
    const big = { pieceBytes: 64, smallBodyBytes: 1 << 20 };
    const events = JSON.stringify(Array.from({ length: 20 }, (_, i) => ({ event_id: `e${i}` })));
    expect(parseBatchBody(Buffer.from(`{"events":${events}}`), big)).toBeUndefined();
    expect(parseBatchBody(Buffer.from(`{"other":1,"events":${events}}`), SMALL)).toBeUndefined();
    expect(parseBatchBody(Buffer.from(`{"events":${events},"other":1}`), SMALL)).toBeUndefined();
    expect(parseBatchBody(Buffer.from(`{"events":${events.slice(0, -1)},]}`), SMALL)).toBeUndefined();
    expect(parseBatchBody(Buffer.from(`{"events":${events}}x`), SMALL)).toBeUndefined();
    expect(parseBatchBody(Buffer.from(`{"events":${events}`), SMALL)).toBeUndefined();
    expect(parseBatchBody(Buffer.from('{"events":[]}'), SMALL)).toEqual({ events: [] });
    expect(parseBatchBody(Buffer.from(`{"events":${events}}`), SMALL)?.events).toHaveLength(20);
  });
});
